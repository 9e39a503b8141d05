"""Training: datasets, augmentation, baselines, fine-tuning, evaluation and export."""
