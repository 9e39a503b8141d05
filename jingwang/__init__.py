"""jingwang (净网): screens Chinese online content for trafficking, child-sale, illegal-adoption,
surrogacy, birth-document-fraud and organ-trade ads. This package holds only the CLI; the
core lives in `models`, training in `training`, the service in `serve`, crawlers in `crawler`."""

__version__ = "0.1.0"
