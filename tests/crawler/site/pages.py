"""Contents of the mock site: invented Chinese forum and classifieds posts.

Every contact below is fake on purpose (138-0000-xxxx style numbers, ``*_test`` ids).
``flagged`` says whether the post is an ad the screener must flag (True) or a look-alike
negative it must pass (False); tests compare the feed against it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Post:
    slug: str
    title: str
    body: str
    flagged: bool
    author: str = "匿名用户"
    posted: str = "2026-11-20 10:31"


# Forum threads (UTF-8, CSS selectors): ads and look-alike negatives mixed.
FORUM_POSTS: list[Post] = [
    Post("thread-1", "【助孕】试管代怀包成功 可选性别",
         "本机构专业代孕十年，试管代怀包成功，包男孩包女孩任选，全程一对一服务，境外代孕手续全包。"
         "费用透明，签合同，不成功全额退款。有意向的夫妻加微信 abc_test123 详谈，电话 138-0000-0001。",
         True, "助孕顾问"),
    Post("thread-2", "出售刚满月男婴 健康",
         "家里孩子太多养不起，出售刚满月男婴一名，身体健康无病，营养费八万，"
         "可以先视频看孩子，诚心要的联系 QQ 10000001（测试号），非诚勿扰。",
         True, "宝妈小林"),
    Post("thread-3", "私下送养两岁女宝宝 不用手续",
         "本人家庭困难，想私下送养一个两岁的女宝宝，不用去民政局走手续，可以帮忙上户口，"
         "希望找个条件好的人家，有意者联系 139-0000-0002。",
         True, "困难家庭"),
    Post("thread-4", "专业办理出生医学证明 包上户口",
         "专业办理出生医学证明，医院真章可查，包上户口，没有准生证也能办。"
         "另可做亲子鉴定改结果，保密快速。微信 doc_test456。",
         True, "证件服务"),
    Post("thread-5", "高价收购肾源 配型快",
         "长期高价收购肾源，18到40岁身体健康者优先，配型快，卖肾一个报酬三十万，"
         "手术安排在私立医院，全程有人接送。联系 137-0000-0003。",
         True, "健康顾问"),
    Post("thread-6", "越南新娘包成功 不跑包退",
         "越南新娘介绍，包成功包娶到家，不跑包退，全程包路费包签证，"
         "价格八万起，当月可带回。有意者加 wx bride_test789。",
         True, "跨国婚介"),
    Post("thread-7", "送养小猫 三个月大 已驱虫",
         "家里的英短生了一窝，送养小猫三只，三个月大，已驱虫打过疫苗。"
         "限本市，要求科学喂养，接受定期回访，不收任何费用。",
         False, "猫奴阿花"),
    Post("thread-8", "出售婴儿车 九成新",
         "出售婴儿车一辆，九成新，带遮阳棚和雨罩，原价一千二现价四百，"
         "另有婴儿床和两罐没开封的婴儿奶粉一起转让，自提。",
         False, "二手妈妈"),
    Post("thread-9", "招聘育儿嫂 月嫂 有经验优先",
         "家政公司长期招聘育儿嫂、月嫂，需持健康证，有两年以上经验者优先，"
         "月薪八千到一万二，包吃住，签正规劳动合同。",
         False, "家政公司"),
    Post("thread-10", "警方破获一起拐卖儿童案 解救被拐儿童",
         "记者从市公安局获悉，警方近日打掉一个拐卖儿童犯罪团伙，抓获犯罪嫌疑人十一名，"
         "解救被拐儿童五名。警方提醒，买卖儿童是严重刑事犯罪，发现线索请拨打110举报。",
         False, "本地新闻"),
    Post("thread-11", "红十字会开展器官捐献登记宣传",
         "市红十字会本周末在人民广场开展人体器官捐献志愿登记宣传活动，"
         "市民可通过官方渠道登记，器官捐献坚持自愿无偿原则，严禁任何形式的器官买卖。",
         False, "红十字会"),
    Post("thread-12", "出生医学证明遗失怎么补办",
         "出生医学证明遗失后，可由父母携带双方身份证、户口簿和医院出具的分娩记录，"
         "到孩子出生的医院申请补办，具体流程以当地卫健委规定为准。",
         False, "办事指南"),
    Post("thread-13", "民政局收养登记需要哪些材料",
         "依法收养子女应当到民政局办理收养登记。收养人需提供身份证、户口簿、"
         "婚姻状况证明和无犯罪记录证明等材料，经评估后方可登记。",
         False, "法律咨询"),
    Post("thread-14", "正规医院试管婴儿流程介绍",
         "正规医院的试管婴儿需要夫妻双方持结婚证和身份证建档，经检查符合指征后进入促排卵、"
         "取卵、胚胎移植等步骤，费用三到五万不等，具体请咨询生殖中心。",
         False, "医院科普"),
    Post("thread-15", "本地婚恋交友活动报名",
         "本周六举办单身青年交友联谊会，地点在市青年中心，现场免费，"
         "报名请在评论区留言，活动由团市委主办。",
         False, "婚恋活动"),
    # A repost of thread-1 with a new phone number: the near-duplicate.
    Post("thread-16", "【助孕】试管代怀包成功 可选性别",
         "本机构专业代孕十年，试管代怀包成功，包男孩包女孩任选，全程一对一服务，境外代孕手续全包。"
         "费用透明，签合同，不成功全额退款。有意向的夫妻加微信 abc_test123 详谈，电话 138-0000-0009。",
         True, "助孕顾问"),
]

# Declared GBK in the HTTP header (decoded as GB18030); holds 𠮷, which GBK cannot encode.
GB18030_POST = Post(
    "thread-gbk", "转让满月女婴 价格面议",
    "因个人原因转让满月女婴一名，健康，营养费面议，可上户口，有意的私聊 wx girl_test001。"
    "联系人：𠮷先生。",
    True, "𠮷先生",
)

# Big5, declared only in <meta>: a Taiwanese-style post in traditional characters.
BIG5_POST = Post(
    "post-big5", "出售男嬰 健康 私下交易",
    "出售滿月男嬰一名，身體健康，營養費十萬元，私下交易不用手續，可幫忙辦出生證明，"
    "有意者請聯繫 LINE: tw_test001。",
    True, "台北陳先生",
)

# The page that changes between two crawls: benign first, an ad after the edit.
CHANGING_V1 = Post(
    "changing", "二手婴儿床转让",
    "实木婴儿床一张，孩子大了用不上，八成新，一百元自提。", False, "二手妈妈",
)
CHANGING_V2 = Post(
    "changing", "二手婴儿床转让（已更新）",
    "婴儿床已送出。另：高价收购肾源，配型快，卖肾报酬二十万，联系 136-0000-0004。",
    True, "二手妈妈",
)

# The very large page: an ad on top of megabytes of ordinary comments.
BIG_POST = Post(
    "huge", "千楼长帖：代孕包成功经验交流",
    "楼主：代孕包成功，包男孩，价格私聊，微信 big_test999。",
    True, "楼主",
)
BIG_COMMENT = "网友回复：今天天气不错，大家周末去公园散步了吗？孩子们玩得很开心。"

# Classifieds (GB18030 pages, XPath selectors), two list pages.
CLASSIFIEDS: list[Post] = [
    Post("item-1", "招募爱心供卵志愿者 高额补贴",
         "招募二十到二十八岁健康女性供卵，卖卵补贴两万起，另招代孕妈妈，包吃住，"
         "电话 135-0000-0005。", True, "某生物科技"),
    Post("item-2", "整租两室一厅 近地铁",
         "整租两室一厅，精装修，家电齐全，近地铁站，月租三千五，押一付三，中介勿扰。",
         False, "房东王先生"),
    Post("item-3", "二手轿车转让 手续齐全",
         "个人一手轿车转让，行驶五万公里，手续齐全，可过户，价格面议。", False, "车主"),
    Post("item-4", "亲子鉴定 可改结果 加急出报告",
         "亲子鉴定加急出报告，结果可以按需求修改，出生证明也能办理，保密。"
         "微信 dna_test321。", True, "鉴定咨询"),
    Post("item-5", "高薪招聘餐厅服务员",
         "市中心餐厅招聘服务员五名，包吃住，月薪五千，有社保，年龄十八到四十岁。",
         False, "餐厅人事"),
    Post("item-6", "送养金毛幼犬 已打疫苗",
         "金毛幼犬两只免费领养，已打疫苗，要求不笼养不转送。", False, "狗狗之家"),
    Post("item-7", "出售婴儿床 八成新",
         "出售婴儿床一张，八成新，带床垫，一百五十元。", False, "宝妈"),
    Post("item-8", "境外务工 包路费 证件公司保管",
         "招聘境外务工人员，包路费包吃住，到了之后护照证件由公司统一保管，"
         "工资年底结算，不许中途离开。联系 133-0000-0006。", True, "劳务中介"),
]
