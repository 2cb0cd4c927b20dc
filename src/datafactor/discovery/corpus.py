"""A labelled synthetic corpus for evaluating the recognisers, and CSV files for benchmarking them.

Deterministic given a seed. ``generate_corpus`` builds tables whose columns each hold one entity
type (with a known label) or a hard negative (label None): 18-digit order numbers, including
ones shaped like resident IDs but with a wrong check digit; 11-digit numbers that are not mobile
numbers; 16-19-digit numbers that fail Luhn; years, product codes, amounts, timestamps, order
dates, plain Chinese words, company and city names, and more. Every cell also carries its own
label: labelled columns contain a few blanks and "dirty" cells (single-character corruptions of
check-digit values, or placeholders such as "不详"), which are labelled None.

The values are generated from the specifications (GB 11643, GB 32100, Luhn, ISO 3779, the Thai
and Singapore check algorithms, MIIT mobile segments, GA 36 plates, division codes) with this
module's own check-digit code, never by asking the recognisers; hard negatives are re-drawn
until they are invalid by the same specifications. Column names mix Chinese and English, and
many are neutral ("字段7", "col_3") so that values must speak for themselves; types that a value
alone cannot show (a bare date of birth, a lone latitude, a romanised name) always get a column
name that says what they are, as real data would.
"""

from __future__ import annotations

import csv
import datetime
import ipaddress
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from datafactor.discovery import lexicon as lx
from datafactor.discovery.recognizers import CHECK_DIGIT_TYPES, ENTITY_TYPES, division_names
from datafactor.identity.codes import (
    PROVINCE_CODES,
    USCC_ALPHABET,
    InvalidCode,
    make_resident_id,
    make_uscc,
    validate_resident_id,
    validate_uscc,
)

__all__ = [
    "CSV_LAYOUTS",
    "NEGATIVE_KINDS",
    "CorpusColumn",
    "CorpusTable",
    "generate_corpus",
    "generate_value",
    "write_csv",
]

Rng = random.Random


@dataclass(frozen=True, slots=True)
class CorpusColumn:
    """One column: its name, its label (an entity type, or None), its cells and their labels."""

    name: str
    label: str | None
    kind: str
    values: tuple[str, ...]
    cell_labels: tuple[str | None, ...]


@dataclass(frozen=True, slots=True)
class CorpusTable:
    """A table of the corpus."""

    name: str
    columns: tuple[CorpusColumn, ...]


# --- building blocks -----------------------------------------------------------------------------

_DIGITS = "0123456789"


def _digits(rng: Rng, n: int) -> str:
    return "".join(rng.choice(_DIGITS) for _ in range(n))


def _date(rng: Rng, first: int = 1940, last: int = 2015) -> datetime.date:
    start = datetime.date(first, 1, 1)
    return start + datetime.timedelta(
        days=rng.randrange((datetime.date(last, 12, 31) - start).days)
    )


def _luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def _luhn_ok(number: str) -> bool:
    return _luhn_digit(number[:-1]) == number[-1]


def _counties() -> list[str]:
    """County-level codes to put in IDs: Guangxi mostly, the rest of China too."""
    return [code for code in division_names() if code[4:] != "00" and code[:2] in PROVINCE_CODES]


_COUNTIES = _counties()
_GX_COUNTIES = [c for c in _COUNTIES if c.startswith("45")]
_PROVINCES = {c: n for c, n in division_names().items() if c.endswith("0000")}
_GX = {c: n for c, n in division_names().items() if c.startswith("45") and not c.endswith("0000")}

# Surnames by frequency, with the Guangxi ones (韦 覃 蒙 莫 黄 陆 农 梁) over-represented.
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏"
    "吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵"
    "万钱严覃武戴莫孔向汤蒙农蓝凌甘岑班梁韦黄"
)
_COMPOUND = ("欧阳", "司马", "上官", "诸葛", "东方", "慕容", "令狐", "皇甫")
_GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂玲华飞鑫波斌宇浩凯健俊帆帅旭宁欣怡佳琪雪梅"
    "琳晨辰瑶婷颖倩慧淑珍凤翠红玉萍海燕峰亮建国志文武春秋冬夏晓荣庆龙云雨天宏毅彬晶莉萌蕾薇蓉莹"
    "鹏锋鸿博远航泽轩睿哲思涵梓萱墨若汐诗雅梦琦嘉雯婕璐露璇瑾瑜琛丹阳光辉永福贵德仁义礼智信忠"
    "良善美壮秀妹珠金银松柏兴旺兵勤"
)
_GIVEN_RARE = "宸翊彧昀赟珺璟铖炜烁钰珏琰玥歆瑄芮苒沁滢淇潇洵沐漪"
_MINORITY = ("买买提", "艾力", "阿依古丽", "热合曼", "努尔", "古丽", "阿卜杜", "吐尔逊")
_ROADS = (
    "民族大道",
    "东葛路",
    "朝阳路",
    "友爱北路",
    "大学东路",
    "安吉大道",
    "星光大道",
    "金湖路",
    "竹溪大道",
    "长湖路",
    "中山路",
    "解放路",
    "人民路",
    "建设路",
    "青山路",
    "五一路",
)
_ESTATES = ("阳光小区", "幸福花园", "锦绣家园", "翡翠园", "金色家园", "碧水湾小区")
_TOWNS = ("林逢镇", "平马镇", "那坡镇", "石埠镇", "大塘镇", "江南街道", "新兴街道")
_VILLAGES = ("东养村", "那板屯", "六合村", "团结村", "新街村")
_EN_ROADS = (
    "Minzu Avenue",
    "Dongge Road",
    "Jinhu Road",
    "Youai North Road",
    "Daxue East Road",
    "Orchard Road",
    "Jalan Ampang",
    "Sukhumvit Road",
    "Le Loi Street",
    "Jalan Sudirman",
)
_EN_CITIES = (
    "Qingxiu District, Nanning, Guangxi",
    "Liuzhou, Guangxi",
    "Guilin, Guangxi",
    "Singapore 238859",
    "Kuala Lumpur, Malaysia",
    "Bangkok 10110, Thailand",
    "District 1, Ho Chi Minh City",
    "Jakarta 10220, Indonesia",
)
_PINYIN = ("Wei", "Huang", "Li", "Wang", "Zhang", "Liu", "Chen", "Qin", "Meng", "Mo", "Lu", "Nong")
_PINYIN_GIVEN = ("Xiaobao", "Ming", "Hua", "Jianguo", "Lili", "Fang", "Haiyan", "Yong", "Jun")
_EN_NAMES = (
    "Nguyen Van An",
    "Tran Thi Mai",
    "Somchai Jaidee",
    "Siti Nurhaliza",
    "Tan Wei Ming",
    "Ahmad bin Ismail",
    "Budi Santoso",
    "Maria Santos",
)
_EMAIL_DOMAINS = (
    "qq.com",
    "163.com",
    "126.com",
    "gmail.com",
    "outlook.com",
    "sina.com",
    "gxzf.gov.cn",
    "foxmail.com",
    "example.com.cn",
    "yahoo.com.sg",
)
_AREA_CODES = (
    "010",
    "020",
    "021",
    "022",
    "023",
    "027",
    "028",
    "0771",
    "0772",
    "0773",
    "0774",
    "0775",
    "0776",
    "0777",
    "0778",
    "0779",
    "0770",
    "0755",
    "0731",
    "0871",
    "0898",
)
_CARD_IINS = (
    ("622202", 19),
    ("621700", 19),
    ("622848", 19),
    ("621661", 19),
    ("622588", 16),
    ("625966", 16),
    ("628888", 16),
    ("603367", 19),
    ("601382", 19),
    ("4", 16),
    ("5", 16),
    ("356", 16),
    ("37", 15),
    ("34", 15),
    ("9558", 19),
    ("6011", 16),
)
_WMIS = ("LSV", "LFV", "LGB", "LVS", "LSG", "LHG", "LNB", "LGX", "LB3", "LDC", "WDB", "1HG", "JTD")
_VIN_CHARS = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
_VIN_VALUES = dict(
    zip(
        "ABCDEFGHJKLMNPRSTUVWXYZ",
        (1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9),
        strict=True,
    )
)
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_NIK_PROVINCES = sorted(lx.NIK_PROVINCES)
_VN_PROVINCES = sorted(lx.VN_PROVINCES)
_MY_PLACES = ("01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14")


def _vin_check(vin: str) -> str:
    total = sum((_VIN_VALUES.get(c) or int(c)) * w for c, w in zip(vin, _VIN_WEIGHTS, strict=True))
    return "X" if total % 11 == 10 else str(total % 11)


def _thai_check(first12: str) -> str:
    total = sum(int(d) * (13 - i) for i, d in enumerate(first12))
    return str((11 - total % 11) % 10)


def _nric_letter(prefix: str, digits: str) -> str:
    total = sum(int(d) * w for d, w in zip(digits, (2, 7, 6, 5, 4, 3, 2), strict=True))
    if prefix in "ST":
        return "JZIHGFEDCBA"[(total + (4 if prefix == "T" else 0)) % 11]
    if prefix in "FG":
        return "XWUTRQPNMLK"[(total + (4 if prefix == "G" else 0)) % 11]
    return "KLJNPQRTUWX"[10 - (total + 3) % 11]  # M series


# --- valid values, one generator per entity type -------------------------------------------------


def _resident_id(rng: Rng) -> str:
    county = rng.choice(_GX_COUNTIES if rng.random() < 0.7 else _COUNTIES)
    if rng.random() < 0.08:  # first-generation 15-digit numbers, issued to people born before 2000
        birth = _date(rng, 1930, 1985)
        return f"{county}{birth:%y%m%d}{_digits(rng, 3)}"
    return make_resident_id(county, _date(rng), rng.randrange(1000))


def _mobile(rng: Rng) -> str:
    number = rng.choice(sorted(lx.MOBILE_PREFIXES)) + _digits(rng, 8)
    form = rng.random()
    if form < 0.8:
        return number
    if form < 0.9:
        return f"+86 {number[:3]} {number[3:7]} {number[7:]}"
    if form < 0.95:
        return f"{number[:3]}-{number[3:7]}-{number[7:]}"
    return "+86" + number


def _landline(rng: Rng) -> str:
    area = rng.choice(_AREA_CODES)
    number = rng.choice("23456789") + _digits(rng, 7 if len(area) == 3 else rng.choice((6, 7)))
    form = rng.random()
    if form < 0.6:
        return f"{area}-{number}"
    if form < 0.75:
        return f"({area}){number}"
    if form < 0.85:
        return f"{area} {number}"
    if form < 0.93:
        return f"+86 {area[1:]} {number}"
    return f"{area}-{number}-{rng.randrange(1, 9999)}"


def _bank_card(rng: Rng) -> str:
    iin, length = rng.choice(_CARD_IINS)
    if iin == "5":
        iin = rng.choice(("51", "52", "53", "54", "55"))
    elif iin == "356":
        iin = str(rng.randrange(3528, 3590))
    body = iin + _digits(rng, length - len(iin) - 1)
    number = body + _luhn_digit(body)
    if rng.random() < 0.15:
        return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    return number


def _email(rng: Rng) -> str:
    user = rng.choice(_PINYIN).lower() + rng.choice(("", ".", "_")) + rng.choice(_PINYIN_GIVEN)
    user = user.lower() + (str(rng.randrange(1, 9999)) if rng.random() < 0.6 else "")
    if rng.random() < 0.2:
        user = _digits(rng, rng.randrange(6, 11)).lstrip("0") or "10001"
    return f"{user}@{rng.choice(_EMAIL_DOMAINS)}"


def _uscc(rng: Rng) -> str:
    authority, category = rng.choice(
        (
            ("9", "1"),
            ("9", "1"),
            ("9", "2"),
            ("9", "3"),
            ("1", "2"),
            ("5", "1"),
            ("5", "2"),
            ("N", "2"),
            ("1", "1"),
        )
    )
    body = "".join(rng.choice(USCC_ALPHABET) for _ in range(8))
    if rng.random() < 0.3:
        body = "MA" + "".join(rng.choice(USCC_ALPHABET) for _ in range(6))
    return make_uscc(authority, category, rng.choice(_COUNTIES), body)


def _passport(rng: Rng) -> str:
    form = rng.random()
    if form < 0.5:
        return "E" + _digits(rng, 8)
    if form < 0.85:
        return "E" + rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") + _digits(rng, 7)
    return "G" + _digits(rng, 8)


def _permit(rng: Rng) -> str:
    form = rng.random()
    if form < 0.4:
        return "C" + _digits(rng, 8)
    if form < 0.55:
        return "C" + rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") + _digits(rng, 7)
    if form < 0.7:
        return "L" + _digits(rng, 8)
    if form < 0.9:
        return rng.choice("HM") + _digits(rng, 8)
    return rng.choice("HM") + _digits(rng, 10)


def _plate(rng: Rng) -> str:
    province = "桂" if rng.random() < 0.6 else rng.choice(sorted(lx.PLATE_PROVINCES))
    city = rng.choice(_PLATE_LETTERS[:16])
    form = rng.random()
    if form < 0.65:
        tail = list(_digits(rng, 5))
        for _ in range(rng.choice((0, 0, 1, 2))):
            tail[rng.randrange(5)] = rng.choice(_PLATE_LETTERS)
        serial = "".join(tail)
    elif form < 0.9:
        serial = rng.choice("DF") + rng.choice(_PLATE_LETTERS + _DIGITS) + _digits(rng, 4)
    else:
        serial = _digits(rng, 5) + rng.choice("DF")
    sep = "·" if rng.random() < 0.15 else ""
    return f"{province}{city}{sep}{serial}"


def _vin(rng: Rng) -> str:
    year = rng.choice("ABCDEFGHJKLMNPRSTVWXY123456789")
    body = (
        rng.choice(_WMIS)
        + "".join(rng.choice(_VIN_CHARS) for _ in range(5))
        + "0"
        + year
        + rng.choice(_VIN_CHARS)
        + _digits(rng, 6)
    )
    return body[:8] + _vin_check(body) + body[9:]


def _ip(rng: Rng) -> str:
    if rng.random() < 0.1:
        return str(ipaddress.IPv6Address(rng.getrandbits(128)))
    return ".".join(str(rng.randrange(1, 255)) for _ in range(4))


def _lat_lng(rng: Rng) -> tuple[float, float]:
    if rng.random() < 0.6:  # Guangxi
        return rng.uniform(20.9, 26.4), rng.uniform(104.5, 112.0)
    return rng.uniform(-10.0, 45.0), rng.uniform(95.0, 135.0)


def _geo_pair(rng: Rng) -> str:
    lat, lng = _lat_lng(rng)
    digits = rng.choice((5, 6, 6, 7))
    if rng.random() < 0.3:
        return f"{lng:.{digits}f},{lat:.{digits}f}"
    return (
        f"{lat:.{digits}f}, {lng:.{digits}f}"
        if rng.random() < 0.3
        else f"{lat:.{digits}f},{lng:.{digits}f}"
    )


def _dob(rng: Rng) -> str:
    day = _date(rng)
    return rng.choice(
        (
            f"{day:%Y-%m-%d}",
            f"{day.year}/{day.month}/{day.day}",
            f"{day:%Y%m%d}",
            f"{day.year}年{day.month}月{day.day}日",
            f"{day:%d/%m/%Y}",
            f"{day:%Y.%m.%d}",
        )
    )


def _cn_name(rng: Rng) -> str:
    roll = rng.random()
    if roll < 0.02:
        return "·".join(rng.sample(_MINORITY, 2))
    surname = rng.choice(_COMPOUND) if roll < 0.05 else rng.choice(_SURNAMES)
    given_length = 1 if rng.random() < 0.3 else 2
    # One name in ten uses a rarer character, as fashionable names do (梓萱, 宸翊, 沐漪).
    chars = _GIVEN_RARE if rng.random() < 0.1 else _GIVEN
    return surname + "".join(rng.choice(chars) for _ in range(given_length))


def _latin_name(rng: Rng) -> str:
    if rng.random() < 0.5:
        return f"{rng.choice(_PINYIN)} {rng.choice(_PINYIN_GIVEN)}"
    return rng.choice(_EN_NAMES)


def _cn_address(rng: Rng) -> str:
    code = rng.choice(sorted(_GX))
    city = _GX.get(code[:4] + "00", "")
    county = _GX[code] if code[4:] != "00" else ""
    province = rng.choice(("广西壮族自治区", "广西", "")) if rng.random() < 0.9 else ""
    if rng.random() < 0.2:  # elsewhere in China
        province = rng.choice(list(_PROVINCES.values()))
        city, county = "", ""
    number = rng.randrange(1, 999)
    roll = rng.random()
    if roll < 0.5:
        rest = f"{rng.choice(_ROADS)}{number}号"
    elif roll < 0.75:
        rest = f"{rng.choice(_ROADS)}{number}号{rng.choice(_ESTATES)}{rng.randrange(1, 30)}栋{rng.randrange(101, 2801)}室"
    else:
        rest = f"{rng.choice(_TOWNS)}{rng.choice(_VILLAGES)}{rng.randrange(1, 12)}组"
    return f"{province}{city}{county}{rest}"


def _en_address(rng: Rng) -> str:
    return f"No. {rng.randrange(1, 500)} {rng.choice(_EN_ROADS)}, {rng.choice(_EN_CITIES)}"


def _vn_id(rng: Rng) -> str:
    birth = _date(rng, 1950, 2015)
    century = (0 if birth.year < 2000 else 2) + rng.randrange(2)
    return f"{rng.choice(_VN_PROVINCES)}{century}{birth:%y}{_digits(rng, 6)}"


def _th_id(rng: Rng) -> str:
    first12 = rng.choice("12345678") + _digits(rng, 11)
    number = first12 + _thai_check(first12)
    if rng.random() < 0.2:
        return f"{number[0]}-{number[1:5]}-{number[5:10]}-{number[10:12]}-{number[12]}"
    return number


def _sg_nric(rng: Rng) -> str:
    prefix = rng.choice("SSSTTFGM")
    digits = _digits(rng, 7)
    return prefix + digits + _nric_letter(prefix, digits)


def _my_mykad(rng: Rng) -> str:
    birth = _date(rng, 1950, 2015)
    number = f"{birth:%y%m%d}{rng.choice(_MY_PLACES)}{_digits(rng, 4)}"
    return f"{number[:6]}-{number[6:8]}-{number[8:]}" if rng.random() < 0.5 else number


def _id_nik(rng: Rng) -> str:
    birth = _date(rng, 1950, 2015)
    day = birth.day + (40 if rng.random() < 0.5 else 0)
    region = f"{rng.choice(_NIK_PROVINCES)}{rng.randrange(1, 30):02d}{rng.randrange(1, 40):02d}"
    return f"{region}{day:02d}{birth:%m%y}{rng.randrange(1, 9999):04d}"


# type -> (generator of values a column of that type holds, whether values alone show the type)
_ENTITY_GENERATORS: dict[str, list[tuple[Callable[[Rng], str], bool]]] = {
    "cn_resident_id": [(_resident_id, True)],
    "cn_mobile": [(_mobile, True)],
    "cn_landline": [(_landline, True)],
    "bank_card": [(_bank_card, True)],
    "email": [(_email, True)],
    "cn_uscc": [(_uscc, True)],
    "passport": [(_passport, True)],
    "hk_macao_taiwan_permit": [(_permit, True)],
    "license_plate": [(_plate, True)],
    "vin": [(_vin, True)],
    "ip_address": [(_ip, True)],
    "geo_coordinate": [
        (_geo_pair, True),
        (lambda rng: f"{_lat_lng(rng)[0]:.6f}", False),
        (lambda rng: f"{_lat_lng(rng)[1]:.6f}", False),
    ],
    "date_of_birth": [(_dob, False)],
    "person_name": [(_cn_name, True), (_cn_name, True), (_latin_name, False)],
    "address": [(_cn_address, True), (_cn_address, True), (_en_address, True)],
    "vn_citizen_id": [(_vn_id, True)],
    "th_national_id": [(_th_id, True)],
    "sg_nric": [(_sg_nric, True)],
    "my_mykad": [(_my_mykad, True)],
    "id_nik": [(_id_nik, True)],
}

_CONTEXT_NAMES: dict[str, tuple[str, ...]] = {
    "cn_resident_id": ("身份证号", "身份证号码", "公民身份号码", "id_card", "IDCardNo", "证件号码"),
    "cn_mobile": ("手机号", "手机号码", "联系电话", "mobile", "phone", "cell_phone"),
    "cn_landline": ("办公电话", "座机", "固定电话", "tel", "office_phone", "传真"),
    "bank_card": ("银行卡号", "卡号", "收款账号", "bank_card", "card_no", "CardNumber"),
    "email": ("邮箱", "电子邮件", "email", "E-mail", "contact_email"),
    "cn_uscc": ("统一社会信用代码", "信用代码", "uscc", "credit_code", "纳税人识别号"),
    "passport": ("护照号", "护照号码", "passport_no", "passport"),
    "hk_macao_taiwan_permit": ("港澳通行证", "往来港澳通行证号", "回乡证", "台胞证", "permit_no"),
    "license_plate": ("车牌号", "车牌", "号牌号码", "plate_no", "license_plate"),
    "vin": ("车架号", "车辆识别代号", "VIN", "vin_code", "chassis_no"),
    "ip_address": ("IP地址", "登录IP", "client_ip", "ip", "remote_ip"),
    "geo_coordinate": ("经纬度", "坐标", "位置坐标", "gps", "latlng", "coordinates"),
    "date_of_birth": ("出生日期", "出生年月日", "生日", "birth_date", "dob", "DateOfBirth"),
    "person_name": (
        "姓名",
        "客户姓名",
        "联系人",
        "法定代表人",
        "name",
        "full_name",
        "contact_name",
    ),
    "address": ("地址", "家庭住址", "收货地址", "户籍地址", "address", "home_addr"),
    "vn_citizen_id": ("so_cccd", "cccd", "越南身份证", "cmnd"),
    "th_national_id": ("thai_id", "泰国身份证", "citizen_id_th", "thai_national_id"),
    "sg_nric": ("nric", "NRIC_FIN", "新加坡身份证", "fin_no"),
    "my_mykad": ("mykad", "ic_no", "马来西亚身份证", "mykad_no"),
    "id_nik": ("nik", "no_ktp", "印尼身份证", "nik_ktp"),
}
_GEO_SINGLE_NAMES = (("纬度", "lat", "latitude"), ("经度", "lng", "longitude"))
_LATIN_NAME_NAMES = ("name", "full_name", "姓名", "客户姓名", "contact_name")
_NEUTRAL = ("字段{i}", "col_{i}", "field{i}", "c{i}", "数据{i}", "value_{i}", "备注{i}", "attr{i}")


# --- hard negatives ------------------------------------------------------------------------------


def _valid_rid(value: str) -> bool:
    try:
        validate_resident_id(value)
    except InvalidCode:
        return False
    return True


def _valid_uscc(value: str) -> bool:
    try:
        validate_uscc(value)
    except InvalidCode:
        return False
    return True


def _order_no(rng: Rng) -> str:
    while True:
        if rng.random() < 0.5:  # 18 digits shaped like a resident ID, check digit wrong
            value = rng.choice(_COUNTIES) + f"{_date(rng):%Y%m%d}" + _digits(rng, 4)
        else:
            value = f"{_date(rng, 2018, 2025):%Y%m%d}" + _digits(rng, 10)
        if not (_valid_rid(value) or _valid_uscc(value) or _luhn_ok(value)):
            return value


def _not_mobile(rng: Rng) -> str:
    if rng.random() < 0.8:  # starting with 0, 2, 5 or 8
        return rng.choice("0258") + _digits(rng, 10)
    # starting with 1 but in a segment no operator holds (or the IoT segments 140-144)
    return rng.choice(("100", "110", "120", "140", "141", "144", "160", "164", "169", "179")) + (
        _digits(rng, 8)
    )


def _luhn_fail(rng: Rng) -> str:
    while True:
        length = rng.choice((16, 17, 18, 19))
        prefix = rng.choice(("62", "4", "55")) if length != 16 else rng.choice(("4", "54", "55"))
        value = prefix + _digits(rng, length - len(prefix))
        if not _luhn_ok(value) and not (length == 18 and (_valid_rid(value) or _valid_uscc(value))):
            return value


def _year(rng: Rng) -> str:
    return str(rng.randrange(1990, 2026))


def _product_code(rng: Rng) -> str:
    return rng.choice(
        (
            f"SKU-{rng.randrange(100000):06d}",
            f"GX-{rng.randrange(2018, 2026)}-{rng.randrange(10000):05d}",
            f"CP{rng.randrange(2018, 2026)}{rng.choice('ABCD')}{rng.randrange(10000):04d}",
            f"{rng.choice('ABCDEFGH')}{rng.randrange(10)}{rng.choice('XYZ')}-{rng.randrange(1000):03d}",
        )
    )


def _amount(rng: Rng) -> str:
    return f"{rng.lognormvariate(5, 2):.2f}"


def _timestamp(rng: Rng) -> str:
    day = _date(rng, 2019, 2025)
    clock = f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"
    return f"{day:%Y-%m-%d} {clock}" if rng.random() < 0.7 else f"{day:%Y-%m-%d}T{clock}Z"


def _order_date(rng: Rng) -> str:
    day = _date(rng, 2020, 2025)
    return f"{day:%Y-%m-%d}" if rng.random() < 0.7 else f"{day.year}/{day.month}/{day.day}"


# Ordinary words and short phrases, many starting with a character that is also a surname.
_WORDS = (
    "冰箱 洗衣机 手表 键盘 鼠标 耳机 桌子 椅子 窗帘 被子 枕头 牙膏 雨伞 书包 铅笔 橡皮 水杯 台灯"
    " 高铁 高温 高档 高端 高层 方式 方面 方言 安置 安心 王牌 张贴 张力 刘海 陈列 陈述 杨梅 黄豆"
    " 黄油 黄昏 周边 周期 周年 马桶 马车 马拉松 朱砂 胡椒 胡萝卜 何处 高粱 林荫 林场 罗马 梁山"
    " 谢幕 宋词 唐诗 许可 曾经 肖像 田地 董事会 于是 余下 杜鹃 叶片 苏打 丁香 任意 姜片 钟声"
    " 陆地 汪洋 范本 金条 夏季 付款 方块 白菜 熊掌 秦岭 江湾 段落 雷达 龙虾 史料 陶器 贺词 顾问"
    " 毛衣 万象 钱包 严寒 武器 莫非 孔洞 向日葵 汤勺 蒙古包 农场 蓝莓 凌晨 甘草 班车 石榴 金秋"
    " 白云 平安 和平 明天 成功 江山 文明 常春藤 安康 华夏 高兴 方向 金银花 龙眼 石灰 田螺 黄瓜"
    " 白糖 红糖 米粉 螺蛳粉 芒果 荔枝 甘蔗 木薯 桂圆 柚子 茶油 松脂 八角 香料 陶瓷 绣球 铜鼓"
    " 数据 接口 报表 模型 算法 样本 指标 字段 标签 质量 安全 合规 授权 登记 交易 结算 审计 存证"
)
_STATUS = (
    "已完成",
    "待审核",
    "已取消",
    "处理中",
    "正常",
    "异常",
    "已发货",
    "未支付",
    "active",
    "pending",
    "closed",
    "approved",
    "rejected",
)
_COMPANIES = (
    "广西北部湾大数据交易中心有限公司",
    "南宁市大数据发展局",
    "柳州螺蛳粉产业集团",
    "桂林旅游股份有限公司",
    "广西糖业集团",
    "中国移动广西分公司",
    "防城港钢铁有限公司",
    "北部湾港股份有限公司",
    "玉柴机器集团",
    "东盟数据科技有限公司",
)
_CITIES = tuple(name for code, name in division_names().items() if code.startswith("45"))
_DESCRIPTIONS = (
    "Wireless mouse, black",
    "USB-C cable 2 m",
    "Sugar cane 50 kg bag",
    "Guangxi green tea 250 g",
    "Office chair",
    "LED monitor 27 inch",
    "Rice noodles",
    "Durian from Thailand",
    "Cloud storage 1 TB",
    "Data API subscription",
)
_REMARKS = (
    "客户要求尽快发货",
    "请于下周一前完成审批",
    "已电话联系客户确认",
    "数据来源为政务共享平台",
    "按季度结算",
    "无特殊说明",
    "需要补充材料后重新提交",
    "样本数据仅供测试",
)


def _choice_of(options: Sequence[str]) -> Callable[[Rng], str]:
    return lambda rng: rng.choice(options)


# kind -> (generator, column names); the names include misleading ones on purpose ("卡号" over
# numbers that fail Luhn, "code" over years): a name must never make these a detection.
NEGATIVE_KINDS: dict[str, tuple[Callable[[Rng], str], tuple[str, ...]]] = {
    "order_no_18": (_order_no, ("订单号", "order_no", "交易流水号", "serial_no", "证件号码")),
    "not_mobile_11": (_not_mobile, ("客户编号", "account_no", "会员号", "电话")),
    "luhn_fail": (_luhn_fail, ("卡号", "card_no", "账户编号", "member_card", "交易编号")),
    "year": (_year, ("年份", "year", "code", "编码", "fiscal_year", "卡号")),
    "product_code": (_product_code, ("产品编码", "product_code", "sku", "code", "商品编号")),
    "amount": (_amount, ("金额", "amount", "price", "单价", "total")),
    "timestamp": (_timestamp, ("创建时间", "created_at", "updated_at", "登录时间")),
    "order_date": (_order_date, ("下单日期", "order_date", "交易日期", "date", "签约日期")),
    "words": (_choice_of(_WORDS.split()), ("商品名称", "类别", "关键词", "tag", "name")),
    "status": (_choice_of(_STATUS), ("状态", "status", "审核状态")),
    "company": (_choice_of(_COMPANIES), ("单位名称", "company", "供应商", "企业名称")),
    "city": (_choice_of(_CITIES), ("城市", "city", "所属地区", "区县")),
    "description": (_choice_of(_DESCRIPTIONS), ("description", "item", "product_name")),
    "remark": (_choice_of(_REMARKS), ("备注", "remark", "说明")),
    "integer_id": (lambda rng: str(rng.randrange(1, 10_000_000)), ("id", "序号", "row_id")),
    "quantity": (lambda rng: str(rng.randrange(1, 500)), ("数量", "qty", "count")),
    "percent": (lambda rng: f"{rng.uniform(0, 100):.1f}%", ("占比", "rate", "ratio")),
    "postcode": (lambda rng: f"5{rng.randrange(30000, 49999)}", ("邮编", "postcode", "zip")),
}

_PLACEHOLDERS = ("不详", "无", "N/A", "-", "未知", "null", "待补充", "0")


def _corrupt(value: str, label: str, rng: Rng) -> str:
    """A single-character change that the type's check character must catch."""
    if label == "cn_resident_id" and len(value) == 15:
        # First-generation numbers have no check digit: break the birth month instead.
        return value[:8] + rng.choice(("13", "14", "15", "19", "00")) + value[10:]
    for _ in range(100):
        i = rng.randrange(len(value))
        if not value[i].isdigit():
            continue
        candidate = value[:i] + rng.choice(_DIGITS.replace(value[i], "")) + value[i + 1 :]
        if label == "th_national_id":
            digits = candidate.replace("-", "")
            if _thai_check(digits[:12]) == digits[12]:
                continue  # the mod-11 digit misses some changes (remainders 0 and 10 collide)
        return candidate
    return rng.choice(_PLACEHOLDERS)


# --- public --------------------------------------------------------------------------------------


def generate_value(entity_type: str, rng: Rng) -> str:
    """One valid value of ``entity_type`` (its first, self-evident format)."""
    return _ENTITY_GENERATORS[entity_type][0][0](rng)


def _labelled_column(
    label: str, variant: int, index: int, rows: int, rng: Rng, dirty: float, blanks: float
) -> CorpusColumn:
    generators = _ENTITY_GENERATORS[label]
    generator, self_evident = generators[variant % len(generators)]
    names: Sequence[str]
    if label == "geo_coordinate" and not self_evident:
        names = _GEO_SINGLE_NAMES[variant % len(generators) - 1]
    elif label == "person_name" and not self_evident:
        names = _LATIN_NAME_NAMES
    else:
        names = _CONTEXT_NAMES[label]
    if self_evident and rng.random() < 0.4:
        name = rng.choice(_NEUTRAL).format(i=index)
    else:
        name = rng.choice(names)
    values: list[str] = []
    cell_labels: list[str | None] = []
    for _ in range(rows):
        roll = rng.random()
        if roll < blanks:
            values.append("")
            cell_labels.append(None)
        elif roll < blanks + dirty:
            valid = generator(rng)
            if label in CHECK_DIGIT_TYPES:
                values.append(_corrupt(valid, label, rng))
            else:
                values.append(rng.choice(_PLACEHOLDERS))
            cell_labels.append(None)
        else:
            values.append(generator(rng))
            cell_labels.append(label)
    return CorpusColumn(name, label, label, tuple(values), tuple(cell_labels))


def _negative_column(kind: str, rows: int, rng: Rng) -> CorpusColumn:
    generator, names = NEGATIVE_KINDS[kind]
    values = tuple(generator(rng) for _ in range(rows))
    return CorpusColumn(rng.choice(names), None, kind, values, (None,) * rows)


def generate_corpus(
    seed: int = 0,
    *,
    columns_per_type: int = 6,
    negatives_per_kind: int = 4,
    rows: int = 150,
    columns_per_table: int = 8,
    dirty: float = 0.03,
    blanks: float = 0.05,
) -> list[CorpusTable]:
    """Tables whose columns cover every entity type ``columns_per_type`` times (cycling through
    its formats) and every hard-negative kind ``negatives_per_kind`` times, shuffled."""
    rng = random.Random(seed)
    plan: list[tuple[str, str, int]] = [
        ("entity", label, variant) for label in ENTITY_TYPES for variant in range(columns_per_type)
    ] + [("negative", kind, 0) for kind in NEGATIVE_KINDS for _ in range(negatives_per_kind)]
    rng.shuffle(plan)
    columns: list[CorpusColumn] = []
    for index, (what, label, variant) in enumerate(plan):
        if what == "entity":
            columns.append(_labelled_column(label, variant, index, rows, rng, dirty, blanks))
        else:
            columns.append(_negative_column(label, rows, rng))
    return [
        CorpusTable(f"table_{n:03d}", tuple(columns[start : start + columns_per_table]))
        for n, start in enumerate(range(0, len(columns), columns_per_table))
    ]


_ETHNIC = (
    "汉族",
    "壮族",
    "瑶族",
    "苗族",
    "侗族",
    "仫佬族",
    "毛南族",
    "回族",
    "京族",
    "彝族",
    "水族",
)

# Column layouts of the CSV files ``write_csv`` writes. "register" is a wide register as a
# government department or a trading platform keeps it: a third of the columns identify people,
# the rest are business fields (codes, amounts, dates, statuses, text), Chinese and English.
# "identifiers" has one column of every entity type and the hard negatives: the worst case for a
# scanner, since nearly every cell needs a check-digit or structure test.
CSV_LAYOUTS: dict[str, tuple[tuple[str, str | None, Callable[[Rng], str]], ...]] = {
    "register": (
        ("序号", None, NEGATIVE_KINDS["integer_id"][0]),
        ("姓名", "person_name", _cn_name),
        ("性别", None, _choice_of(("男", "女"))),
        ("民族", None, _choice_of(_ETHNIC)),
        ("身份证号", "cn_resident_id", _resident_id),
        ("出生日期", "date_of_birth", _dob),
        ("手机号", "cn_mobile", _mobile),
        ("家庭住址", "address", _cn_address),
        ("email", "email", _email),
        ("单位名称", None, NEGATIVE_KINDS["company"][0]),
        ("统一社会信用代码", "cn_uscc", _uscc),
        ("商品名称", None, NEGATIVE_KINDS["words"][0]),
        ("product_code", None, _product_code),
        ("数量", None, NEGATIVE_KINDS["quantity"][0]),
        ("单价", None, _amount),
        ("金额", None, _amount),
        ("下单日期", None, _order_date),
        ("created_at", None, _timestamp),
        ("状态", None, NEGATIVE_KINDS["status"][0]),
        ("银行卡号", "bank_card", _bank_card),
        ("车牌号", "license_plate", _plate),
        ("所属地区", None, NEGATIVE_KINDS["city"][0]),
        ("description", None, NEGATIVE_KINDS["description"][0]),
        ("备注", None, NEGATIVE_KINDS["remark"][0]),
        ("年份", None, _year),
        ("订单号", None, _order_no),
    ),
    "identifiers": (
        ("序号", None, NEGATIVE_KINDS["integer_id"][0]),
        ("姓名", "person_name", _cn_name),
        ("身份证号", "cn_resident_id", _resident_id),
        ("手机号", "cn_mobile", _mobile),
        ("家庭住址", "address", _cn_address),
        ("email", "email", _email),
        ("银行卡号", "bank_card", _bank_card),
        ("订单号", None, _order_no),
        ("下单日期", None, _order_date),
        ("金额", None, _amount),
        ("商品名称", None, NEGATIVE_KINDS["words"][0]),
        ("状态", None, NEGATIVE_KINDS["status"][0]),
        ("统一社会信用代码", "cn_uscc", _uscc),
        ("车牌号", "license_plate", _plate),
        ("created_at", None, _timestamp),
        ("办公电话", "cn_landline", _landline),
        ("出生日期", "date_of_birth", _dob),
        ("company", None, NEGATIVE_KINDS["company"][0]),
        ("product_code", None, _product_code),
        ("client_ip", "ip_address", _ip),
        ("remark", None, NEGATIVE_KINDS["remark"][0]),
        ("passport_no", "passport", _passport),
        ("vin", "vin", _vin),
        ("gps", "geo_coordinate", _geo_pair),
        ("年份", None, _year),
        ("nric", "sg_nric", _sg_nric),
        ("thai_id", "th_national_id", _th_id),
        ("address_en", "address", _en_address),
        ("会员号", None, _not_mobile),
        ("港澳通行证", "hk_macao_taiwan_permit", _permit),
        ("cccd", "vn_citizen_id", _vn_id),
        ("mykad", "my_mykad", _my_mykad),
        ("nik", "id_nik", _id_nik),
        ("description", None, NEGATIVE_KINDS["description"][0]),
    ),
}


def write_csv(
    path: Path | str, rows: int, cols: int, *, seed: int = 0, layout: str = "register"
) -> list[tuple[str, str | None]]:
    """Write ``rows`` rows of ``cols`` columns (a header first) to ``path`` as UTF-8 CSV.

    Columns are taken in order from ``CSV_LAYOUTS[layout]`` (repeated, with a numeric suffix,
    when ``cols`` exceeds it); returns each column's (name, label). Rows are streamed, not held
    in memory.
    """
    rng = random.Random(seed)
    base = CSV_LAYOUTS[layout]
    columns = [
        (name if i < len(base) else f"{name}_{i // len(base)}", label, generator)
        for i in range(cols)
        for name, label, generator in [base[i % len(base)]]
    ]
    generators = [generator for _, _, generator in columns]
    with Path(path).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([name for name, _, _ in columns])
        for _ in range(rows):
            writer.writerow([generator(rng) for generator in generators])
    return [(name, label) for name, label, _ in columns]
