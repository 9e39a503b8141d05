"""HTTP layer: dependencies, presenters (rows to response models) and one router per resource."""
