"""Reference word lists the recognisers look values and column names up in.

Kept apart from the recognisers so the rules read as code and the lists as data: surnames (the
百家姓 list plus surnames common in Guangxi and south China, e.g. 覃, 侬, 零, 冼, 麦), characters
that almost never end a given name, road and building words of addresses, the one-character
province abbreviations of licence plates, mobile number segments, card issuer prefixes, and
the column-name words that add context. Administrative division names and codes (GB/T 2260)
come from a standard and live in ``rules/gbt2260.yaml`` instead. Everything here is a frozen
set or a mapping, so a lookup costs one hash.
"""

from __future__ import annotations

from typing import Final


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


__all__ = [
    "ADDRESS_HINT_CHARS",
    "CARD_PREFIXES",
    "COMMON_WORDS",
    "COMPOUND_SURNAMES",
    "CONTEXT_LIMITS",
    "CONTEXT_WORDS",
    "EN_STREET_WORDS",
    "GIVEN_NAME_CHARS",
    "LANDLINE_AREA_CODES_3",
    "MOBILE_PREFIXES",
    "MYKAD_PLACE_CODES",
    "NIK_PROVINCES",
    "NON_NAME_CHARS",
    "PLATE_PROVINCES",
    "SINGLE_SURNAMES",
    "TOP_SURNAMES",
    "VN_PROVINCES",
]

# 百家姓 (single-character part, in its traditional order) followed by surnames that are common
# today but absent from it or frequent in Guangxi (覃 侬 零) and Guangdong (冼 麦 区).
SINGLE_SURNAMES: Final = frozenset(
    "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜戚谢邹喻柏水窦章云苏潘葛"
    "奚范彭郎鲁韦昌马苗凤花方俞任袁柳酆鲍史唐费廉岑薛雷贺倪汤滕殷罗毕郝邬安常乐于时傅皮卞齐康"
    "伍余元卜顾孟平黄和穆萧尹姚邵湛汪祁毛禹狄米贝明臧计伏成戴谈宋茅庞熊纪舒屈项祝董梁杜阮蓝闵"
    "席季麻强贾路娄危江童颜郭梅盛林刁钟徐邱骆高夏蔡田樊胡凌霍虞万支柯昝管卢莫经房裘缪干解应宗"
    "丁宣贲邓郁单杭洪包诸左石崔吉钮龚程嵇邢滑裴陆荣翁荀羊於惠甄曲家封芮羿储靳汲邴糜松井段富巫"
    "乌焦巴弓牧隗山谷车侯宓蓬全郗班仰秋仲伊宫宁仇栾暴甘钭厉戎祖武符刘景詹束龙叶幸司韶郜黎蓟薄"
    "印宿白怀蒲邰从鄂索咸籍赖卓蔺屠蒙池乔阴鬱胥能苍双闻莘党翟谭贡劳逄姬申扶堵冉宰郦雍郤璩桑桂"
    "濮牛寿通边扈燕冀郏浦尚农温别庄晏柴瞿阎充慕连茹习宦艾鱼容向古易慎戈廖庾终暨居衡步都耿满弘"
    "匡国文寇广禄阙东欧殳沃利蔚越夔隆师巩厍聂晁勾敖融冷訾辛阚那简饶空曾毋沙乜养鞠须丰巢关蒯相"
    "查後荆红游竺权逯盖益桓公晋楚闫法汝鄢涂钦岳帅缑亢况郈有琴商牟佘佴伯赏墨哈谯笪年爱阳佟言福"
    "覃侬零付代练揭麦冼区"
)

COMPOUND_SURNAMES: Final = _words(
    "万俟 司马 上官 欧阳 夏侯 诸葛 闻人 东方 赫连 皇甫 尉迟 公羊 澹台 公冶 宗政"
    " 濮阳 淳于 单于 太叔 申屠 公孙 仲孙 轩辕 令狐 钟离 宇文 长孙 慕容 鲜于 闾丘"
    " 司徒 司空 亓官 司寇 仉督 子车 颛孙 端木 巫马 公西 漆雕 乐正 壤驷 公良 拓跋"
    " 夹谷 宰父 谷梁 段干 百里 东郭 南门 呼延 归海 羊舌 微生 梁丘 左丘 东门 西门"
    " 南宫 第五"
)

# Characters that end words (units, organisations, documents, grammar) and are all but absent
# from given names: a two-to-four character string whose "given name" holds one is a word.
NON_NAME_CHARS: Final = frozenset(
    "的了是在不这那们个么吗呢吧啊与及或而但被把从到为以于之其所者也都就又还再很最更已将能该"
    "色品部司门场局院厅处科室店厂费款额价率量数单表码类型件器车路街县省村乡站网库账户项目期次"
    "份批套台箱袋瓶盒吨斤米钟秒线面体式法律规则制度务作员税票据货物资产销购售买卖租贷存取统计划"
    "报告审核批准查询登记注册管理系序模块接口服功能性化区市州镇号幢角周季年日时分族"
)

# Characters common in given names (a two-character string needs its second one here).
GIVEN_NAME_CHARS: Final = frozenset(
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂玲华飞鑫波斌宇浩凯健俊帆帅旭宁欣怡佳琪雪梅琳"
    "晨辰瑶婷颖倩慧淑珍凤翠红玉萍海燕峰亮建国志文武春秋冬夏晓荣庆龙云雨天宏毅彬晶莉萌蕾薇蓉莹鹏锋"
    "鸿博远航泽轩睿哲思涵梓萱墨若汐诗雅梦琦嘉雯婕璐露璇瑾瑜琛丹阳光辉永福贵德仁义礼智信忠良善美壮"
    "妹珠金银松柏兴旺兵勤安然心悦乐康泰和顺祥瑞吉昌盛隆茂林森柳桃杏莲荷菊竹青翰书宣扬振威豪雄逸凡"
    "尘子孝贤才学铭鸣声清泉源江河湖溪浪潮涌流澄沛洁净娴婉媛姝娇媚妍姣婵影灵聪捷锐坚猛彪虎豹鹰鹤鸾"
    "莺鹃蝶蓓蕊芬菲苗茜荔芝蔓萝蓝紫彤朱赤彩霓虹晖曦晴昊昕晗昱晟暄曜升腾翔翼羽舟达通畅利益谦恭让谨"
    "诚挚笃厚朴素洪宽容峻岳岩石山川岚崇嵩巍屹立定坤乾元亨贞祯祺禄寿喜欢笑歌舞韵琴瑟笛箫鼓磬词赋章"
    "典籍卷彰显耀煌灿烂炳焕炎烨煜熙照朗星月昭晋鼎邦家民宗祖传承继续延绵长久恒常新冰霜雾雷电风霁"
    "飘仙佛禅道爱慈悲舍忍耐俭恩惠润滋浴养培植栽种耕耘收获丰硕满盈余裕富馨香芷蘅蕙馥郁葱茏碧绿橙黄"
    "白剔透珑巧妙精致细腻温柔约端庄敬正直廉耻悌友伯仲叔孟幼少小大中东南西北进步展程锦绣"
)

# The hundred or so most frequent surnames (and Guangxi's), which alone make a three-character
# string a likely name even when its given-name characters are not in the list above.
TOP_SURNAMES: Final = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏"
    "吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱"
    "严覃武戴莫孔向汤蒙农蓝凌甘岑班"
)

# Frequent words that begin with a surname character and would otherwise pass as names.
COMMON_WORDS: Final = _words(
    "高兴 高级 高速 高效 方向 方便 方案 安全 安装 安排 文章 文明 文字 黄金 白银"
    " 白天 金融 马上 成功 成本 常见 常用 万一 于是 向前 时间 时候 程度 江山 林地"
    " 石头 田野 和平 和谐 明天 明白 平安 平台 平均 全面 全部 东西 东方红 南方"
    " 西方 北方 公开 公平 公共 国家 国际 家庭 家具 张开 李子 周末 吴语 郑重 王国"
    " 冯河 陈旧 杨柳 朱红 秦朝 许多 何必 吕剧 施工 孔雀 曹操 严格 华丽 魏晋 陶瓷"
    " 姜汤 谢谢 章程 云朵 苏醒 潘多拉 范围 彭湃 鲁莽 马路 苗条 凤凰 花朵 花园"
    " 方法 任务 袁大头 柳树 史诗 唐朝 费用 雷电 贺卡 汤圆 罗盘 毕竟 安静 常规"
    " 乐观 于今 齐全 康复 余额 元旦 顾客 孟春 黄色 黄瓜 穆斯林 毛巾 米饭 明星"
    " 计算 成绩 宋体 熊猫 舒适 项链 祝福 董事 梁柱 杜绝 蓝色 强大 贾人 路灯 江河"
    " 童年 颜色 梅花 盛大 林木 钟表 高山 夏天 田园 胡同 霍乱 万能 卢布 管道 房间"
    " 经济 宗教 丁香 单位 洪水 包装 石油 崔嵬 吉祥 程序 荣誉 曲线 家人 封面 松树"
    " 井水 巫师 乌鸦 巴士 山水 谷物 车辆 侯爵 全国 秋天 宫殿 宁静 甘蔗 武术 符合"
    " 龙虾 叶子 司机 黎明 白色 蒲公英 池塘 乔木 双方 党员 申请 桑叶 桂花 牛奶"
    " 通知 边境 燕子 尚未 农民 温度 庄园 柴油 连续 习惯 艾草 鱼塘 容易 向导 古代"
    " 易于 居民 步行 都市 满意 国内 文化 广告 东南 欧洲 师傅 冷静 辛苦 简单 空气"
    " 曾经 沙发 丰富 关系 相关 红色 游戏 权利 公司 公园 晋级 法院 岳父 商品 年龄"
    " 阳光 言论 福利 代表 练习"
)

ADDRESS_HINT_CHARS: Final = frozenset("路街道巷弄村屯号栋幢室楼组院区县市镇乡省旗里苑园")

EN_STREET_WORDS: Final = _words(
    "road rd street st avenue ave lane ln boulevard blvd drive dr way highway hwy jalan"
    " jln soi thanon lorong duong pho building bldg floor district village block blk"
)

# One-character province abbreviations that open a civilian licence plate (GA 36-2018).
PLATE_PROVINCES: Final = frozenset("京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼")

# Mobile number segments allocated by MIIT (first three digits), IoT 140-144 excluded.
MOBILE_PREFIXES: Final = frozenset(
    [f"13{d}" for d in range(10)]
    + ["145", "146", "147", "148", "149", "150", "151", "152", "153", "155", "156", "157"]
    + ["158", "159", "162", "165", "166", "167", "170", "171", "172", "173", "174", "175"]
    + ["176", "177", "178"]
    + [f"18{d}" for d in range(10)]
    + [f"19{d}" for d in range(10)]
)

# The 3-digit area codes of the largest cities; every other area code has 4 digits (0xxx).
LANDLINE_AREA_CODES_3: Final = _words("010 020 021 022 023 024 025 027 028 029")

# Issuer prefixes (by the first two digits) of payment cards: the card lengths each allows and
# the narrower ranges some of them need (inclusive, compared on the first 4 or 6 digits).
CARD_PREFIXES: Final[dict[str, tuple[frozenset[int], tuple[tuple[str, str], ...]]]] = {
    # UnionPay (银联) and the Chinese domestic debit ranges that start with 60 (e.g. 601382).
    "62": (frozenset({16, 17, 18, 19}), ()),
    "60": (frozenset({16, 17, 18, 19}), (("6011", "6039"),)),
    "95": (frozenset({19}), (("9558", "9558"),)),  # ICBC's pre-UnionPay 19-digit cards
    "51": (frozenset({16}), ()),
    "52": (frozenset({16}), ()),
    "53": (frozenset({16}), ()),
    "54": (frozenset({16}), ()),
    "55": (frozenset({16}), ()),
    "22": (frozenset({16}), (("2221", "2299"),)),
    "23": (frozenset({16}), ()),
    "24": (frozenset({16}), ()),
    "25": (frozenset({16}), ()),
    "26": (frozenset({16}), ()),
    "27": (frozenset({16}), (("2700", "2720"),)),
    "34": (frozenset({15}), ()),
    "37": (frozenset({15}), ()),
    "35": (frozenset({16, 17, 18, 19}), (("3528", "3589"),)),
    "64": (frozenset({16, 17, 18, 19}), (("6440", "6499"),)),
    "65": (frozenset({16, 17, 18, 19}), ()),
    "30": (frozenset({14, 16, 17, 18, 19}), (("3000", "3059"),)),
    "36": (frozenset({14, 16, 17, 18, 19}), ()),
    "38": (frozenset({16, 17, 18, 19}), ()),
    "39": (frozenset({16, 17, 18, 19}), ()),
    **{f"4{d}": (frozenset({16, 19}), ()) for d in range(10)},
}

# Vietnam: the 63 province codes that open a 12-digit citizen identity (CCCD) number.
VN_PROVINCES: Final = _words(
    "001 002 004 006 008 010 011 012 014 015 017 019 020 022 024 025 026 027 030 031 033"
    " 034 035 036 037 038 040 042 044 045 046 048 049 051 052 054 056 058 060 062 064 066"
    " 067 068 070 072 074 075 077 079 080 082 083 084 086 087 089 091 092 093 094 095 096"
)

# Malaysia: MyKad place-of-birth codes (digits 7-8): states, and the foreign-birth ranges.
MYKAD_PLACE_CODES: Final = frozenset(
    [f"{n:02d}" for n in range(1, 17)]
    + [f"{n:02d}" for n in range(21, 69)]
    + ["71", "72", "74", "75", "76", "77", "78", "79"]
    + [f"{n:02d}" for n in range(82, 94)]
    + ["98", "99"]
)

# Indonesia: province codes (digits 1-2) of the NIK, including the 2022 Papua provinces.
NIK_PROVINCES: Final = _words(
    "11 12 13 14 15 16 17 18 19 21 31 32 33 34 35 36 51 52 53 61 62 63 64 65 71 72 73 74"
    " 75 76 81 82 91 92 93 94 95 96"
)

# Column-name words per entity type: Chinese words match anywhere in the name, English words
# match a whole token of it (``mobile_phone`` has the tokens ``mobile`` and ``phone``) or the
# whole name with separators removed (``IDCard`` -> ``idcard``). Kept narrow on purpose: no
# generic word such as "code", "no", "number", "编码" or "号码" appears anywhere.
CONTEXT_WORDS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "cn_resident_id": (
        ("身份证", "证件号", "公民身份", "身份号"),
        ("idcard", "idno", "idnumber", "identity", "sfz", "sfzh", "resident", "nationalid"),
    ),
    "cn_mobile": (
        ("手机", "电话", "联系方式", "移动电话", "联系号码"),
        ("mobile", "phone", "cell", "cellphone", "tel", "telephone", "msisdn", "contact"),
    ),
    "cn_landline": (
        ("电话", "座机", "固话", "传真", "联系方式"),
        ("tel", "telephone", "phone", "landline", "fax", "contact"),
    ),
    "bank_card": (
        ("银行卡", "卡号", "银行账号", "银行账户", "开户账号", "收款账号"),
        ("bankcard", "cardno", "cardnumber", "card", "bank", "pan", "iban", "debit", "credit"),
    ),
    "email": (("邮箱", "电子邮件", "邮件", "电邮"), ("email", "mail", "e_mail", "emailaddress")),
    "cn_uscc": (
        ("信用代码", "统一社会", "社会信用", "纳税人识别号", "税号"),
        ("uscc", "creditcode", "taxid", "taxno", "socialcreditcode"),
    ),
    "passport": (("护照",), ("passport", "passportno")),
    "hk_macao_taiwan_permit": (
        ("通行证", "回乡证", "台胞证", "港澳", "台湾居民", "往来"),
        ("permit", "hkmacao", "hmt", "mtp", "homereturn", "twpermit"),
    ),
    "license_plate": (
        ("车牌", "号牌", "牌照"),
        ("plate", "licenseplate", "licenceplate", "plateno"),
    ),
    "vin": (("车架号", "车辆识别", "识别代号"), ("vin", "chassis", "frameno")),
    "ip_address": (("ip地址",), ("ip", "ipaddr", "ipaddress", "ipv4", "ipv6", "clientip")),
    "geo_coordinate": (
        ("经度", "纬度", "坐标", "经纬", "定位"),
        ("lat", "lng", "lon", "latitude", "longitude", "coord", "coords", "gps", "geo", "latlng"),
    ),
    "date_of_birth": (("出生", "生日", "诞辰"), ("birth", "dob", "birthday", "born", "birthdate")),
    "person_name": (
        (
            "姓名",
            "名字",
            "联系人",
            "负责人",
            "法定代表人",
            "法人代表",
            "经办人",
            "申请人",
            "收件人",
            "收货人",
            "寄件人",
            "患者",
            "户主",
            "持卡人",
            "人名",
            "客户名",
        ),
        (
            "name",
            "fullname",
            "person",
            "contactname",
            "owner",
            "holder",
            "surname",
            "firstname",
            "lastname",
            "givenname",
        ),
    ),
    "address": (
        (
            "地址",
            "住址",
            "住所",
            "户籍地",
            "居住地",
            "所在地",
            "收货地",
            "通讯地",
            "区划代码",
            "行政区划",
        ),
        ("address", "addr", "street", "residence", "adcode", "divisioncode"),
    ),
    "vn_citizen_id": (("越南",), ("cccd", "cmnd", "cancuoc", "vnid", "vietnam")),
    "th_national_id": (("泰国",), ("thai", "thaiid", "thid", "citizenid")),
    "sg_nric": (("新加坡",), ("nric", "fin", "uin", "sgid", "singapore")),
    "my_mykad": (("马来西亚",), ("mykad", "icno", "myid", "malaysia", "kadpengenalan")),
    "id_nik": (("印尼", "印度尼西亚"), ("nik", "ktp", "indonesia")),
}

# Words that, in a column name, make a type unlikely: the type then needs a higher match ratio
# (never zero, so a mislabelled column of real identifiers is still found).
CONTEXT_LIMITS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "person_name": (
        (
            "产品",
            "商品",
            "公司",
            "单位",
            "企业",
            "机构",
            "项目",
            "文件",
            "品名",
            "名称",
            "部门",
            "城市",
        ),
        (
            "product",
            "item",
            "company",
            "org",
            "organisation",
            "organization",
            "file",
            "dept",
            "department",
            "project",
            "table",
            "brand",
            "goods",
            "sku",
            "city",
            "filename",
            "host",
        ),
    ),
    "ip_address": (("版本",), ("version", "ver")),
    "address": (("邮编", "邮政"), ("zip", "postcode", "postal")),
}
