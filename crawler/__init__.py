"""jingwang's crawler: a Scrapy project whose generic spiders are driven by YAML site files.

Layout follows Scrapy's project template: `settings` (polite defaults), `items`,
`pipelines` (dedup, screening, feed, API sink, crawl state), `middlewares`, `spiders`; plus
`config` (site files), `text` (HTML to clean text), `extract`, `dedup` and `state`
(recrawl state), `extensions` (summary, fingerprint expiry, distributed idling) and `run`
(what `jingwang crawl` calls). Importing this package imports nothing heavy.
"""
