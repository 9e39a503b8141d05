"""A small invented labelled set for fixtures (never taken from the dev set)."""

from __future__ import annotations

import json
from pathlib import Path

POSITIVES: list[tuple[str, list[str]]] = [
    ("出售健康男婴一名，三个月大，价格面议，同城可见面交接", ["child_sale"]),
    ("女宝五个月转让，营养费四万，手续不用办，私聊", ["child_sale", "illegal_adoption"]),
    ("求购一岁以内男孩，价钱好商量，加微信详谈", ["child_sale"]),
    ("有偿送养刚满月宝宝，感谢费两万，不走民政手续", ["child_sale", "illegal_adoption"]),
    ("私下送养女孩一名，不用手续，可以帮忙上户口", ["illegal_adoption", "document_fraud"]),
    ("想私下领养一个宝宝，不走手续，男女都可以", ["illegal_adoption"]),
    ("代孕包成功，包性别套餐，价格私聊", ["surrogacy"]),
    ("招聘代孕妈妈，年龄22到32岁，月薪两万，包吃住", ["surrogacy"]),
    ("境外代孕一站式服务，试管代怀，不成功全额退款", ["surrogacy"]),
    ("高价收购卵子，捐卵补贴三万，女大学生优先", ["surrogacy"]),
    ("办理出生医学证明，真件可查，包上户口", ["document_fraud"]),
    ("专业代办出生证，无需医院记录，三天出证", ["document_fraud"]),
    ("亲子鉴定结果可改，保证过，价格私聊", ["document_fraud"]),
    ("高价收肾，O型优先，配型快，价格面议", ["organ_trade"]),
    ("肾源充足，中介一条龙，费用五十万，包配型", ["organ_trade"]),
    ("卖肾，本人二十五岁身体健康，有意者联系", ["organ_trade"]),
    ("越南新娘包成功包不跑，全程八万八", ["trafficking"]),
    ("招募女孩去境外工作，包路费，证件由公司保管", ["trafficking"]),
    ("介绍外籍媳妇，十八岁到二十五岁可选，跑了补一个", ["trafficking"]),
    ("招残疾人乞讨，管吃管住，收入归老板", ["trafficking"]),
]
NEGATIVES: list[str] = [
    "警方破获一起拐卖儿童案，解救被拐儿童五名",
    "送养小猫两只，已打疫苗，只送爱猫人士",
    "出售九成新婴儿车，带遮阳棚，自提",
    "器官捐献登记流程：在官网填写信息即可",
    "出生医学证明补办需要带身份证到医院",
    "月嫂招聘，有证书优先，月薪一万",
    "正规医院试管婴儿的流程和费用介绍",
    "代孕在我国是违法的，法学界对此有讨论",
    "民政局收养登记需要准备哪些材料",
    "今天天气真好，适合出去散步",
    "出售二手手机，九成新，价格可议",
    "宝贝回家志愿者帮助被拐家庭寻亲",
    "招聘仓库管理员，五险一金，周末双休",
    "领养狗狗需要签协议并定期回访",
    "肾内科专家门诊时间调整通知",
    "正规亲子鉴定中心，司法鉴定资质齐全",
    "这部电视剧讲述了打拐民警的故事",
    "婴儿奶粉清仓，保质期到明年",
    "婚恋网站实名认证，严禁任何买卖婚姻",
    "关于严厉打击代孕违法行为的通知",
]


def rows(tag: str = "") -> list[dict]:
    """Positives (kind positive) and hard negatives, with ids; ``tag`` varies them per split."""
    items = [
        {"id": f"p{i}{tag}", "text": text + tag, "labels": labels, "kind": "positive"}
        for i, (text, labels) in enumerate(POSITIVES)
    ]
    items += [
        {"id": f"n{i}{tag}", "text": text + tag, "labels": [], "kind": "hard_negative"}
        for i, text in enumerate(NEGATIVES)
    ]
    return items


def write_jsonl(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items), encoding="utf-8")
    return path
