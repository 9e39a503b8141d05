"""jingwang's generic spiders: `site` (list pages + pagination) and `feed` (sitemap/RSS/Atom).

Both are driven by a site file (`crawler.config`); neither holds site-specific code.
"""
