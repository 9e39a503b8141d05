# Scrapy settings for the jingwang crawler.
#
# Polite by default: robots.txt obeyed, AutoThrottle on, one request at a time per domain,
# an identifying User-Agent, retries with back-off. `jingwang crawl` sets the JINGWANG_*
# and distributed-mode settings from its options; `scrapy crawl` reads them from -s.
#
#     https://docs.scrapy.org/en/latest/topics/settings.html

from crawler.items import FEED_FIELDS

BOT_NAME = "jingwang"

SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

ADDONS = {}

# Crawl responsibly by identifying yourself (and where to complain)
USER_AGENT = "jingwang-crawler/0.1 (+https://github.com/jingwang-project/jingwang; content-safety screening)"

# Obey robots.txt rules
ROBOTSTXT_OBEY = True

# Concurrency and throttling: few requests per site, adapted to its latency
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 2
DOWNLOAD_DELAY = 0.5
DOWNLOAD_DELAY_JITTER = 0.5
DOWNLOAD_TIMEOUT = 30

# Stop a page that would fill memory; warn well before
DOWNLOAD_MAXSIZE = 16 * 1024 * 1024
DOWNLOAD_WARNSIZE = 4 * 1024 * 1024

# Retries with back-off (crawler.middlewares.BackoffRetryMiddleware): 1 s, 2 s, ... or the
# server's Retry-After, capped
RETRY_ENABLED = True
RETRY_TIMES = 2
RETRY_BACKOFF_BASE = 1.0
RETRY_BACKOFF_MAX = 60.0
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]

# Redirect loops end at the dupefilter or after this many hops
REDIRECT_MAX_TIMES = 5

COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False

DEFAULT_REQUEST_HEADERS = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "zh-CN,zh;q=0.9,zh-TW;q=0.8,en;q=0.5",
}

DOWNLOADER_MIDDLEWARES = {
    "crawler.middlewares.ResumeMiddleware": 50,
    "crawler.middlewares.ConditionalGetMiddleware": 60,
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "crawler.middlewares.BackoffRetryMiddleware": 550,
    "crawler.middlewares.SiteEncodingMiddleware": 950,
}

EXTENSIONS = {
    "crawler.extensions.RedisIdle": 500,
    "crawler.extensions.FingerprintExpiry": 510,
    "crawler.extensions.CrawlSummary": 520,
}

ITEM_PIPELINES = {
    "crawler.pipelines.DedupPipeline": 100,
    "crawler.pipelines.ScreeningPipeline": 200,
    "crawler.pipelines.FeedPipeline": 300,
    "crawler.pipelines.ApiSinkPipeline": 400,
    "crawler.pipelines.StatePipeline": 900,
}

# Enable and configure the AutoThrottle extension
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0

# Breadth-first within a site: list pages before the deep tail
DEPTH_PRIORITY = 1
SCHEDULER_DISK_QUEUE = "scrapy.squeues.PickleFifoDiskQueue"
SCHEDULER_MEMORY_QUEUE = "scrapy.squeues.FifoMemoryQueue"

# Progress in the log
LOGSTATS_INTERVAL = 60.0
LOG_LEVEL = "INFO"

# Feeds: UTF-8, JSON Lines, scan-format columns first
FEED_EXPORT_ENCODING = "utf-8"
FEED_EXPORT_FIELDS = FEED_FIELDS

# jingwang: screening, state and sinks (see crawler/pipelines.py, crawler/state.py)
JINGWANG_SCREEN = True
JINGWANG_MODEL = ""  # "" = shipped default; "lexicon", "baseline" or a model directory
JINGWANG_SCREEN_BATCH = 32
JINGWANG_SCREEN_WAIT = 0.05
JINGWANG_MAX_TEXT_CHARS = 20000
JINGWANG_NEAR_DUPLICATES = "mark"  # or "drop"
JINGWANG_CONDITIONAL_GET = True  # recrawls send If-None-Match / If-Modified-Since
JINGWANG_STATE_DIR = ".jingwang/crawl"
JINGWANG_FEED = ""  # JSON Lines feed written (and flushed) item by item; `jingwang crawl -o`
JINGWANG_PROGRESS_INTERVAL = 30.0
JINGWANG_API_URL = ""
JINGWANG_API_KEY = ""
JINGWANG_API_AUTH_HEADER = "Authorization"
JINGWANG_API_AUTH_SCHEME = "Bearer"
JINGWANG_API_BATCH = 32
JINGWANG_API_RETRIES = 5
JINGWANG_API_BACKOFF = 0.5
JINGWANG_API_RATE_LIMIT_RETRIES = 10  # 429s: a budget apart from JINGWANG_API_RETRIES
JINGWANG_API_MAX_RETRY_AFTER = 60.0  # longest wait a 429's Retry-After gets
JINGWANG_DEAD_LETTER = "dead-letter.jsonl"
JINGWANG_API_MAX_TEXT_CHARS = 20000  # the service's JINGWANG_MAX_TEXT_CHARS; longer texts are cut
JINGWANG_REDIS_PREFIX = "jingwang"
JINGWANG_REDIS_IDLE_CLOSE = 3.0
JINGWANG_FINGERPRINT_TTL = 7 * 24 * 3600
