"""The demo quarter of the sales plugin (``portal demo``): one quarter of a mid-size
industrial-equipment maker's pipeline, told through the same services the pages use.

Salesloop Demo Co. sells machining centres, lathes, laser cutters, robots and their
service to factories in East and South China. Over the last 90 days its four
salespeople (Li Na in Shanghai, Wang Fang in Hangzhou, Zhao Lei in Guangzhou, Liu Yang
in Shenzhen) worked about sixty prospects and customers: calls, visits and emails with
their follow-ups (a few of them overdue now), opportunities in every stage, quotations
(one discount waiting for Zhang Wei, one approved and sent, one revised and accepted),
contracts (one in review, one being delivered with a payment overdue, one completed)
and after-sales (an open quality complaint past its first-response deadline, a closed
one with its corrective action verified). Prospects nobody followed up went back to
the shared pool.

Everything goes through the areas' services with ``now=`` set into the past, so totals,
loop items, approvals, stored rule decisions and notifications are what the pages would
have made; where a service has no ``now`` (a quotation's or a contract's creation time,
market notes, contact persons, approval requests) the time is set afterwards with plain
UPDATEs. Deterministic (one seeded random generator; times are relative to today),
written in the caller's transaction (``portal demo`` commits once, as the ``cli:demo``
actor) and run once: a second run finds the product list and changes nothing.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.audit.recorder import acting_as
from portal.auth.models import User
from portal.extensions import db
from portal.loops import approvals
from portal.loops import service as loops
from portal.loops.models import ApprovalRequest, LoopItem, Notification
from portal.loops.notifications import notify, portal_path
from portal.models import utcnow
from portal.money import yuan
from portal.org.services import supervisor_of

from .models import (
    ContactPerson,
    Contract,
    Customer,
    MarketNote,
    Milestone,
    Opportunity,
    PaymentInstalment,
    Product,
    Quotation,
)

log = logging.getLogger("plugins.sales.demo")

SEED = 20260331
# The people of the demo organisation (plugins/organisation/demo.py) the quarter needs.
PEOPLE = (
    "manager",
    "finance",
    "sup_east",
    "sup_south",
    "sales_li",
    "sales_wang",
    "sales_zhao",
    "sales_liu",
)
SWEEP_ACTOR = "job:sales.follow_up_sweep"

# -- the product list -------------------------------------------------------------------------

# (code, name, category, unit, list price, cost) in yuan.
# fmt: off
PRODUCTS: tuple[tuple[str, str, str, str, int, int], ...] = (
    ("VMC-850", "立式加工中心 VMC850 / Vertical machining centre", "加工中心 / Machining centres",
     "台 / unit", 368_000, 245_000),
    ("VMC-1160", "立式加工中心 VMC1160 / Vertical machining centre",
     "加工中心 / Machining centres", "台 / unit", 468_000, 312_000),
    ("HMC-630", "卧式加工中心 HMC630 / Horizontal machining centre",
     "加工中心 / Machining centres", "台 / unit", 1_280_000, 860_000),
    ("CK-460", "数控车床 CK460 / CNC lathe", "车床 / Lathes", "台 / unit", 186_000, 121_000),
    ("LSR-3015", "光纤激光切割机 3015 (6 kW) / Fibre laser cutter", "钣金 / Sheet metal",
     "台 / unit", 520_000, 338_000),
    ("PBR-110", "数控折弯机 110 吨 / CNC press brake 110 t", "钣金 / Sheet metal", "台 / unit",
     158_000, 99_000),
    ("ROB-W20", "六轴焊接机器人 20 kg / Six-axis welding robot", "自动化 / Automation", "套 / set",
     245_000, 158_000),
    ("ACP-75", "螺杆空压机 75 kW / Screw air compressor", "动力设备 / Utilities", "台 / unit",
     96_000, 61_000),
    ("CNV-M1", "模块化输送线 / Modular conveyor line", "自动化 / Automation", "米 / metre", 2800,
     1750),
    ("PLC-CAB", "PLC 电控柜 / PLC control cabinet", "自动化 / Automation", "台 / unit", 68_000,
     44_000),
    ("SRV-1K5", "伺服电机及驱动器 1.5 kW / Servo motor and drive", "自动化 / Automation",
     "套 / set", 6800, 4300),
    ("SPD-KIT", "主轴备件包 / Spindle spare parts kit", "备件 / Spare parts", "套 / set", 18_500,
     10_200),
    ("SVC-INST", "安装调试服务 / Installation and commissioning", "服务 / Services",
     "人天 / person-day", 2400, 1200),
    ("SVC-MAINT", "年度维保合同 / Annual maintenance contract", "服务 / Services", "年 / year",
     48_000, 26_000),
    ("SVC-TRAIN", "操作与编程培训 / Operator and programming training", "服务 / Services",
     "期 / course", 12_000, 5000),
)
# fmt: on

# -- the customers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class City:
    zh: str
    en: str
    area: str  # telephone area code
    province: str  # first two digits of the tax ID's region code
    region: str


CITIES = {
    "shanghai": City("上海", "Shanghai", "021", "31", "east"),
    "suzhou": City("苏州", "Suzhou", "0512", "32", "east"),
    "kunshan": City("昆山", "Kunshan", "0512", "32", "east"),
    "taicang": City("太仓", "Taicang", "0512", "32", "east"),
    "changshu": City("常熟", "Changshu", "0512", "32", "east"),
    "hangzhou": City("杭州", "Hangzhou", "0571", "33", "east"),
    "ningbo": City("宁波", "Ningbo", "0574", "33", "east"),
    "shaoxing": City("绍兴", "Shaoxing", "0575", "33", "east"),
    "jiaxing": City("嘉兴", "Jiaxing", "0573", "33", "east"),
    "huzhou": City("湖州", "Huzhou", "0572", "33", "east"),
    "wenzhou": City("温州", "Wenzhou", "0577", "33", "east"),
    "taizhou": City("台州", "Taizhou", "0576", "33", "east"),
    "jinhua": City("金华", "Jinhua", "0579", "33", "east"),
    "zhoushan": City("舟山", "Zhoushan", "0580", "33", "east"),
    "guangzhou": City("广州", "Guangzhou", "020", "44", "south"),
    "foshan": City("佛山", "Foshan", "0757", "44", "south"),
    "dongguan": City("东莞", "Dongguan", "0769", "44", "south"),
    "zhongshan": City("中山", "Zhongshan", "0760", "44", "south"),
    "jiangmen": City("江门", "Jiangmen", "0750", "44", "south"),
    "zhaoqing": City("肇庆", "Zhaoqing", "0758", "44", "south"),
    "qingyuan": City("清远", "Qingyuan", "0763", "44", "south"),
    "zhuhai": City("珠海", "Zhuhai", "0756", "44", "south"),
    "shenzhen": City("深圳", "Shenzhen", "0755", "44", "south"),
    "huizhou": City("惠州", "Huizhou", "0752", "44", "south"),
    "heyuan": City("河源", "Heyuan", "0762", "44", "south"),
    "shanwei": City("汕尾", "Shanwei", "0660", "44", "south"),
    "nanjing": City("南京", "Nanjing", "025", "32", "east"),
    "wuxi": City("无锡", "Wuxi", "0510", "32", "east"),
    "changzhou": City("常州", "Changzhou", "0519", "32", "east"),
    "yangzhou": City("扬州", "Yangzhou", "0514", "32", "east"),
    "xiamen": City("厦门", "Xiamen", "0592", "35", "east"),
    "changsha": City("长沙", "Changsha", "0731", "43", "central"),
    "nanchang": City("南昌", "Nanchang", "0791", "36", "east"),
    "hefei": City("合肥", "Hefei", "0551", "34", "east"),
}


@dataclass(frozen=True)
class Firm:
    """One prospect or customer of the demo: ``key`` names it in the stories below;
    ``plan`` is the shape of its quarter for the ones without a story of their own:
    ``contact`` (contacted, on track), ``overdue`` (its follow-up is past due now)."""

    key: str
    owner: str
    name: str
    en: str
    industry: str
    size: str
    city: str
    source: str
    grade: str
    stage: str
    need: str
    plan: str = "contact"


F = Firm
# fmt: off
FIRMS: tuple[Firm, ...] = (
    # -- Li Na, Shanghai team ------------------------------------------------------------------
    F("huadong", "sales_li", "上海华东精密机械有限公司",
      "Shanghai Huadong Precision Machinery Co., Ltd.", "machinery", "large", "shanghai",
      "exhibition", "A", "prospect",
      "扩建二号厂房，新增 4 台立式加工中心，替换 6 台老设备 / Expanding workshop 2: four new "
      "VMCs to replace six ageing machines", "story"),
    F("hengli", "sales_li", "苏州工业园区恒力精工有限公司",
      "Suzhou Hengli Precision Engineering Co., Ltd.", "machinery", "medium", "suzhou", "referral",
      "B", "prospect",
      "更新一台数控车床并培训操作工 / Replace one CNC lathe and train the operators", "story"),
    F("shenlian", "sales_li", "上海申联汽车配件有限公司", "Shanghai Shenlian Auto Parts Co., Ltd.",
      "automotive", "large", "shanghai", "website", "A", "prospect",
      "新能源车副车架焊接产线 / Welding line for EV subframes", "deal"),
    F("demei", "sales_li", "昆山德美精密电子有限公司",
      "Kunshan Demei Precision Electronics Co., Ltd.", "electronics", "medium", "kunshan",
      "cold_call", "B", "prospect",
      "SMT 治具加工精度不足，返工率高 / SMT fixtures not accurate enough, too much rework", "deal"),
    F("pujiang", "sales_li", "上海浦江医疗器械有限公司",
      "Shanghai Pujiang Medical Devices Co., Ltd.", "medical", "medium", "shanghai", "exhibition",
      "B", "prospect", "钛合金骨钉精密车削 / Precision turning of titanium bone screws", "deal"),
    F("lingang", "sales_li", "上海临港新能源装备有限公司",
      "Shanghai Lingang New Energy Equipment Co., Ltd.", "energy", "large", "shanghai", "website",
      "A", "prospect", "风电法兰厚板切割 / Cutting thick plate for wind-turbine flanges", "story"),
    F("baoshan", "sales_li", "上海宝山重工机械有限公司",
      "Shanghai Baoshan Heavy Machinery Co., Ltd.", "machinery", "enterprise", "shanghai",
      "referral", "A", "customer",
      "老客户：加工中心年度维保与备件 / Long-standing customer: yearly maintenance and spares"),
    F("huitong", "sales_li", "上海嘉定汇通模具有限公司",
      "Shanghai Jiading Huitong Moulds Co., Ltd.", "manufacturing", "small", "shanghai",
      "cold_call", "C", "prospect",
      "模具型腔精加工外协转自制 / Bring mould cavity finishing in-house", "overdue"),
    F("jinqiao", "sales_li", "上海金桥电气成套设备有限公司",
      "Shanghai Jinqiao Switchgear Co., Ltd.", "electronics", "medium", "shanghai", "partner", "B",
      "customer", "柜体钣金产能扩充 / More sheet-metal capacity for cabinets"),
    F("hailian", "sales_li", "太仓海联液压件有限公司", "Taicang Hailian Hydraulics Co., Ltd.",
      "machinery", "small", "taicang", "exhibition", "C", "prospect",
      "阀体加工效率提升 / Faster machining of valve bodies"),
    F("songjiang", "sales_li", "上海松江精密五金有限公司",
      "Shanghai Songjiang Precision Hardware Co., Ltd.", "manufacturing", "small", "shanghai",
      "cold_call", "C", "prospect", "冲压件去毛刺自动化 / Automated deburring of stampings",
      "overdue"),
    F("hengtong", "sales_li", "上海闵行恒通阀门有限公司",
      "Shanghai Minhang Hengtong Valves Co., Ltd.", "manufacturing", "medium", "shanghai",
      "website", "B", "prospect",
      "阀门壳体车削自动上下料 / Automatic loading for valve-body turning"),
    F("tiancheng", "sales_li", "常熟天成纺织机械有限公司",
      "Changshu Tiancheng Textile Machinery Co., Ltd.", "machinery", "medium", "changshu",
      "exhibition", "C", "prospect",
      "纺机零件加工替换老车床 / Replace old lathes for textile machine parts"),
    F("qingpu", "sales_li", "上海青浦食品包装机械有限公司",
      "Shanghai Qingpu Packaging Machinery Co., Ltd.", "machinery", "small", "shanghai",
      "cold_call", "D", "prospect",
      "少量不锈钢件激光切割 / Occasional laser cutting of stainless parts"),
    F("fengxian", "sales_li", "上海奉贤化工设备有限公司",
      "Shanghai Fengxian Chemical Equipment Co., Ltd.", "chemicals", "large", "shanghai",
      "partner", "C", "customer", "压力容器法兰加工 / Machining pressure-vessel flanges"),
    # -- Wang Fang, Hangzhou team --------------------------------------------------------------
    F("qianjiang", "sales_wang", "杭州钱江汽车零部件有限公司",
      "Hangzhou Qianjiang Auto Parts Co., Ltd.", "automotive", "large", "hangzhou", "exhibition",
      "A", "prospect", "底盘件钣金下料改激光切割 / Move chassis blanking to laser cutting",
      "story"),
    F("beilun", "sales_wang", "宁波北仑注塑机械有限公司",
      "Ningbo Beilun Injection Machinery Co., Ltd.", "machinery", "medium", "ningbo", "referral",
      "B", "prospect", "模具型腔加工中心 / Machining centre for mould cavities", "deal"),
    F("xiaoshan", "sales_wang", "杭州萧山精工机械有限公司",
      "Hangzhou Xiaoshan Precision Machinery Co., Ltd.", "machinery", "medium", "hangzhou",
      "cold_call", "B", "prospect",
      "卧式加工中心故障频繁，计划替换 / The horizontal machining centre keeps failing", "deal"),
    F("keqiao", "sales_wang", "绍兴柯桥纺织设备有限公司",
      "Shaoxing Keqiao Textile Equipment Co., Ltd.", "machinery", "small", "shaoxing",
      "exhibition", "C", "prospect",
      "纺机零件加工中心 / Machining centre for textile machine parts", "deal"),
    F("nanhu", "sales_wang", "嘉兴南湖电子科技有限公司", "Jiaxing Nanhu Electronics Co., Ltd.",
      "electronics", "small", "jiaxing", "website", "C", "prospect",
      "贴片线输送段伺服改造 / Servo retrofit of the SMT conveyor", "deal"),
    F("changxing", "sales_wang", "湖州长兴新能源电池有限公司",
      "Huzhou Changxing New Energy Battery Co., Ltd.", "energy", "large", "huzhou", "referral",
      "A", "prospect",
      "二期电池托盘产线需激光切割 / Laser cutting for the phase-2 battery tray line", "deal"),
    F("zhenhai", "sales_wang", "宁波镇海石化装备有限公司",
      "Ningbo Zhenhai Petrochemical Equipment Co., Ltd.", "chemicals", "enterprise", "ningbo",
      "referral", "B", "customer",
      "老客户：设备维保与备件 / Long-standing customer: maintenance and spares"),
    F("binjiang", "sales_wang", "杭州滨江智能装备有限公司",
      "Hangzhou Binjiang Intelligent Equipment Co., Ltd.", "machinery", "medium", "hangzhou",
      "partner", "B", "customer", "机器人工作站配套加工 / Machined parts for robot cells"),
    F("ouhai", "sales_wang", "温州瓯海阀门制造有限公司",
      "Wenzhou Ouhai Valve Manufacturing Co., Ltd.", "manufacturing", "small", "wenzhou",
      "cold_call", "C", "prospect", "阀体加工提效 / Faster valve-body machining", "overdue"),
    F("huangyan", "sales_wang", "台州黄岩模塑有限公司", "Taizhou Huangyan Moulding Co., Ltd.",
      "manufacturing", "small", "taizhou", "exhibition", "C", "prospect",
      "模具电极加工 / Machining mould electrodes"),
    F("yongkang", "sales_wang", "金华永康五金工具有限公司",
      "Jinhua Yongkang Hardware Tools Co., Ltd.", "manufacturing", "medium", "jinhua", "website",
      "C", "prospect", "五金工具冲压下料 / Blanking for hand tools"),
    F("cixi", "sales_wang", "宁波慈溪家电配件有限公司", "Ningbo Cixi Appliance Parts Co., Ltd.",
      "electronics", "small", "ningbo", "cold_call", "D", "prospect",
      "空压机节能改造 / Energy-saving air compressors", "overdue"),
    F("yuhang", "sales_wang", "杭州余杭医疗科技有限公司",
      "Hangzhou Yuhang Medical Technology Co., Ltd.", "medical", "small", "hangzhou", "website",
      "C", "prospect", "医疗器械外壳精加工 / Finishing of medical device housings"),
    F("shangyu", "sales_wang", "绍兴上虞精细化工有限公司",
      "Shaoxing Shangyu Fine Chemicals Co., Ltd.", "chemicals", "medium", "shaoxing", "cold_call",
      "D", "prospect", "车间压缩空气系统更新 / New compressed-air system"),
    F("zhoushan", "sales_wang", "舟山船舶配套设备有限公司", "Zhoushan Marine Equipment Co., Ltd.",
      "machinery", "medium", "zhoushan", "referral", "B", "customer",
      "船用泵体加工 / Machining marine pump casings"),
    # -- Zhao Lei, Guangzhou team --------------------------------------------------------------
    F("zhujiang", "sales_zhao", "广州珠江电子科技有限公司",
      "Guangzhou Zhujiang Electronics Technology Co., Ltd.", "electronics", "large", "guangzhou",
      "referral", "A", "customer",
      "SMT 车间自动化输送线 / Automated conveyor line for the SMT workshop", "story"),
    F("nanfang", "sales_zhao", "佛山南方五金制品有限公司",
      "Foshan Nanfang Hardware Products Co., Ltd.", "manufacturing", "medium", "foshan", "partner",
      "B", "prospect", "钣金车间折弯焊接自动化 / Automating bending and welding", "story"),
    F("panyu", "sales_zhao", "广州番禺汽车模具有限公司",
      "Guangzhou Panyu Automotive Dies Co., Ltd.", "automotive", "medium", "guangzhou",
      "exhibition", "B", "prospect", "汽车覆盖件模具加工产能 / Capacity for automotive body dies",
      "deal"),
    F("changan", "sales_zhao", "东莞长安精密塑胶有限公司",
      "Dongguan Chang'an Precision Plastics Co., Ltd.", "manufacturing", "medium", "dongguan",
      "cold_call", "C", "prospect", "注塑件去毛刺机器人 / Deburring robots for moulded parts",
      "deal"),
    F("huangpu", "sales_zhao", "广州黄埔医疗设备有限公司",
      "Guangzhou Huangpu Medical Equipment Co., Ltd.", "medical", "medium", "guangzhou", "website",
      "B", "prospect", "医疗设备外壳钣金 / Sheet metal for equipment housings", "deal"),
    F("shunde", "sales_zhao", "佛山顺德家电制造有限公司",
      "Foshan Shunde Appliance Manufacturing Co., Ltd.", "electronics", "enterprise", "foshan",
      "exhibition", "A", "prospect", "空压站节能改造 / Energy-saving compressed-air station",
      "deal"),
    F("huadu", "sales_zhao", "广州花都汽车零部件有限公司", "Guangzhou Huadu Auto Parts Co., Ltd.",
      "automotive", "large", "guangzhou", "referral", "A", "customer",
      "老客户：加工中心备件与维保 / Long-standing customer: spares and maintenance"),
    F("xiaolan", "sales_zhao", "中山小榄五金锁具有限公司",
      "Zhongshan Xiaolan Hardware Locks Co., Ltd.", "manufacturing", "small", "zhongshan",
      "cold_call", "C", "prospect", "锁体精密车削 / Precision turning of lock bodies", "overdue"),
    F("xinhui", "sales_zhao", "江门新会不锈钢制品有限公司",
      "Jiangmen Xinhui Stainless Steel Products Co., Ltd.", "manufacturing", "small", "jiangmen",
      "exhibition", "C", "prospect", "不锈钢厨具激光切割 / Laser cutting of stainless kitchenware"),
    F("gaoyao", "sales_zhao", "肇庆高要金属加工有限公司", "Zhaoqing Gaoyao Metalworking Co., Ltd.",
      "machinery", "small", "zhaoqing", "cold_call", "D", "prospect",
      "二手设备替换咨询 / Asking about replacing second-hand machines", "overdue"),
    F("huayue", "sales_zhao", "清远华粤陶瓷机械有限公司",
      "Qingyuan Huayue Ceramic Machinery Co., Ltd.", "machinery", "medium", "qingyuan", "website",
      "C", "prospect", "陶瓷机械零件加工 / Machining ceramic-machinery parts"),
    F("zengcheng", "sales_zhao", "广州增城新能源科技有限公司",
      "Guangzhou Zengcheng New Energy Technology Co., Ltd.", "energy", "medium", "guangzhou",
      "referral", "B", "prospect",
      "储能柜钣金与焊接 / Sheet metal and welding for storage cabinets"),
    F("nanhai", "sales_zhao", "佛山南海铝型材有限公司",
      "Foshan Nanhai Aluminium Profiles Co., Ltd.", "manufacturing", "large", "foshan", "partner",
      "B", "customer", "型材深加工中心 / Machining centre for profile processing"),
    F("doumen", "sales_zhao", "珠海斗门电子电器有限公司",
      "Zhuhai Doumen Electrical Appliances Co., Ltd.", "electronics", "small", "zhuhai",
      "cold_call", "C", "prospect", "小家电外壳钣金 / Sheet metal for small appliances"),
    F("baiyun", "sales_zhao", "广州白云机电设备有限公司",
      "Guangzhou Baiyun Electromechanical Equipment Co., Ltd.", "machinery", "medium", "guangzhou",
      "website", "C", "prospect", "电机壳体加工 / Machining motor housings"),
    # -- Liu Yang, Shenzhen team ---------------------------------------------------------------
    F("baoan", "sales_liu", "深圳宝安精密机械有限公司",
      "Shenzhen Bao'an Precision Machinery Co., Ltd.", "machinery", "medium", "shenzhen",
      "exhibition", "B", "prospect", "大型箱体件卧式加工 / Horizontal machining of large housings",
      "story"),
    F("nanshan", "sales_liu", "深圳南山智能制造有限公司",
      "Shenzhen Nanshan Intelligent Manufacturing Co., Ltd.", "electronics", "large", "shenzhen",
      "referral", "A", "prospect",
      "结构件机器人焊接工作站 / Robot welding stations for structural parts", "deal"),
    F("songshanhu", "sales_liu", "东莞松山湖机器人科技有限公司",
      "Dongguan Songshan Lake Robotics Co., Ltd.", "machinery", "medium", "dongguan", "website",
      "B", "prospect", "机器人本体零件精加工 / Precision machining of robot arm parts", "deal"),
    F("zhongkai", "sales_liu", "惠州仲恺电池材料有限公司",
      "Huizhou Zhongkai Battery Materials Co., Ltd.", "energy", "large", "huizhou", "exhibition",
      "A", "prospect", "新车间压缩空气系统 / Compressed-air system for the new workshop", "deal"),
    F("longgang", "sales_liu", "深圳龙岗电子元件有限公司",
      "Shenzhen Longgang Electronic Components Co., Ltd.", "electronics", "medium", "shenzhen",
      "cold_call", "B", "prospect",
      "老产线 PLC 电控柜升级 / Upgrade the PLC cabinets of an old line", "deal"),
    F("humen", "sales_liu", "东莞虎门五金冲压有限公司",
      "Dongguan Humen Hardware Stamping Co., Ltd.", "manufacturing", "small", "dongguan",
      "cold_call", "C", "prospect", "冲压件改激光切割 / Move stamped parts to laser cutting",
      "deal"),
    F("guangming", "sales_liu", "深圳光明医疗器械有限公司",
      "Shenzhen Guangming Medical Devices Co., Ltd.", "medical", "medium", "shenzhen", "referral",
      "B", "customer", "老客户：车床操作培训与备件 / Long-standing customer: training and spares"),
    F("pingshan", "sales_liu", "深圳坪山新能源汽车配件有限公司",
      "Shenzhen Pingshan EV Parts Co., Ltd.", "automotive", "large", "shenzhen", "partner", "A",
      "customer", "电机壳体加工产能 / Capacity for e-motor housings"),
    F("houjie", "sales_liu", "东莞厚街家具机械有限公司",
      "Dongguan Houjie Furniture Machinery Co., Ltd.", "machinery", "small", "dongguan",
      "exhibition", "C", "prospect", "家具机械零件加工 / Parts for furniture machinery", "overdue"),
    F("dayawan", "sales_liu", "惠州大亚湾化工设备有限公司",
      "Huizhou Daya Bay Chemical Equipment Co., Ltd.", "chemicals", "large", "huizhou", "website",
      "C", "prospect", "换热器管板钻孔 / Drilling heat-exchanger tube sheets"),
    F("futian", "sales_liu", "深圳福田精密仪器有限公司",
      "Shenzhen Futian Precision Instruments Co., Ltd.", "electronics", "small", "shenzhen",
      "cold_call", "C", "prospect", "仪器外壳小批量加工 / Small batches of instrument housings"),
    F("liaobu", "sales_liu", "东莞寮步模具有限公司", "Dongguan Liaobu Moulds Co., Ltd.",
      "manufacturing", "small", "dongguan", "cold_call", "D", "prospect",
      "模具维修设备 / Equipment for mould repair", "overdue"),
    F("guanlan", "sales_liu", "深圳观澜激光设备有限公司",
      "Shenzhen Guanlan Laser Equipment Co., Ltd.", "machinery", "small", "shenzhen", "partner",
      "C", "prospect", "激光设备机架加工 / Machined frames for laser machines"),
    F("heyuan", "sales_liu", "河源高新精密部件有限公司",
      "Heyuan Hi-Tech Precision Parts Co., Ltd.", "manufacturing", "small", "heyuan", "exhibition",
      "C", "prospect", "精密零件车铣复合 / Turn-mill work for precision parts"),
    F("honghaiwan", "sales_liu", "汕尾红海湾风电设备有限公司",
      "Shanwei Honghai Bay Wind Power Equipment Co., Ltd.", "energy", "medium", "shanwei",
      "referral", "B", "customer", "风电塔筒法兰加工 / Machining tower flanges"),
)
# fmt: on

# The shared pool (公海): (key, former owner or None, name, English, industry, size,
# city, source, need, what happened: "sweep", "released" with the owner's reason, or
# "imported" straight into the pool).
# fmt: off
POOL: tuple[tuple[str, str | None, str, str, str, str, str, str, str, str], ...] = (
    ("jiangning", "sales_li", "南京江宁精密铸造有限公司",
     "Nanjing Jiangning Precision Casting Co., Ltd.", "manufacturing", "medium", "nanjing",
     "exhibition", "铸件粗加工外协转自制 / Bring rough machining of castings in-house", "sweep"),
    ("xinwu", "sales_wang", "无锡新吴电子材料有限公司",
     "Wuxi Xinwu Electronic Materials Co., Ltd.", "electronics", "medium", "wuxi", "website",
     "分切设备机架加工 / Machined frames for slitting machines", "sweep"),
    ("jingkai", "sales_zhao", "长沙经开区工程机械配件有限公司",
     "Changsha Jingkai Construction Machinery Parts Co., Ltd.", "machinery", "large", "changsha",
     "exhibition", "结构件焊接机器人 / Welding robots for structural parts", "sweep"),
    ("wujin", "sales_wang", "常州武进电机有限公司", "Changzhou Wujin Electric Motor Co., Ltd.",
     "machinery", "medium", "changzhou", "cold_call",
     "电机端盖加工自动化 / Automated machining of motor end shields",
     "预算冻结，明年一季度再联系 / Budget frozen: call again in Q1 next year"),
    ("xiaolan_nc", "sales_liu", "南昌小蓝汽车零部件有限公司",
     "Nanchang Xiaolan Auto Parts Co., Ltd.", "automotive", "medium", "nanchang", "website",
     "转向节加工 / Machining steering knuckles",
     "由集团总部统一采购，本地工厂无决策权 / Group HQ buys centrally; the plant cannot decide"),
    ("hanjiang", None, "扬州邗江汽车配件有限公司", "Yangzhou Hanjiang Auto Parts Co., Ltd.",
     "automotive", "small", "yangzhou", "import",
     "冲焊件产能扩充 / More capacity for stamped and welded parts", "imported"),
    ("haicang", None, "厦门海沧机械制造有限公司",
     "Xiamen Haicang Machinery Manufacturing Co., Ltd.", "machinery", "medium", "xiamen", "import",
     "数控车床更新 / Replace CNC lathes", "imported"),
    ("xinzhan", None, "合肥新站显示器件有限公司", "Hefei Xinzhan Display Devices Co., Ltd.",
     "electronics", "large", "hefei", "import", "洁净车间输送线 / Conveyor lines for a clean room",
     "imported"),
)
# fmt: on

# Contact persons: (surname, given name, pinyin) and titles.
# fmt: off
SURNAMES = (
    ("王", "Wang"), ("陈", "Chen"), ("张", "Zhang"), ("刘", "Liu"), ("周", "Zhou"),
    ("吴", "Wu"), ("徐", "Xu"), ("孙", "Sun"), ("胡", "Hu"), ("朱", "Zhu"), ("高", "Gao"),
    ("林", "Lin"), ("何", "He"), ("郭", "Guo"), ("马", "Ma"), ("罗", "Luo"), ("梁", "Liang"),
    ("宋", "Song"), ("郑", "Zheng"), ("谢", "Xie"), ("韩", "Han"), ("唐", "Tang"),
)
GIVEN = (
    ("建国", "Jianguo"), ("志强", "Zhiqiang"), ("海峰", "Haifeng"), ("丽", "Li"),
    ("晓东", "Xiaodong"), ("国平", "Guoping"), ("振华", "Zhenhua"), ("敏", "Min"),
    ("伟明", "Weiming"), ("红梅", "Hongmei"), ("立新", "Lixin"), ("静", "Jing"),
    ("永刚", "Yonggang"), ("雪芳", "Xuefang"), ("德军", "Dejun"), ("春燕", "Chunyan"),
    ("文斌", "Wenbin"), ("佳琪", "Jiaqi"),
)
# fmt: on
TITLES = (
    "设备部部长 / Head of equipment",
    "采购经理 / Purchasing manager",
    "生产总监 / Production director",
    "技术主管 / Technical lead",
    "总经理 / General manager",
    "副总经理 / Deputy general manager",
    "财务经理 / Finance manager",
)
ROADS = ("工业园路", "科技大道", "兴业路", "创新路", "经济开发区纬三路", "高新四路", "园区大道")

# -- contacts: what a call, email, visit or meeting was about ------------------------------------

SUMMARIES = {
    "call": (
        "电话了解今年设备采购计划 / Call: this year's equipment purchase plan",
        "电话回访设备使用情况 / Call: how the machines are running",
        "电话确认技术参数和交期要求 / Call: confirmed specifications and lead time",
        "电话预约现场拜访 / Call: booked a site visit",
        "电话沟通备件和维保需求 / Call: spare parts and maintenance needs",
    ),
    "email": (
        "发送产品资料和行业案例 / Email: brochures and reference cases",
        "发送设备选型建议 / Email: machine selection advice",
        "邮件答复付款方式问题 / Email: answered questions on payment terms",
    ),
    "visit": (
        "拜访设备部，参观现有产线 / Visit: equipment department, toured the line",
        "现场工艺交流并测量场地 / Visit: process discussion and site survey",
        "陪同应用工程师做试切演示 / Visit: test-cut demo with our application engineer",
        "拜访采购部，介绍服务网络 / Visit: purchasing, presented our service network",
    ),
    "meeting": (
        "客户来公司参观展厅和装配车间 / Meeting: the customer toured our showroom",
        "与客户技术、采购三方会议 / Meeting: with their engineering and purchasing",
    ),
}
FOCUS = (
    ("交期", "lead time"),
    ("加工精度", "machining accuracy"),
    ("售后响应速度", "service response times"),
    ("能耗", "energy use"),
    ("付款方式", "payment terms"),
    ("设备稳定性", "reliability"),
    ("操作培训", "operator training"),
)
NEXT_STEPS = (
    "准备报价 / Prepare a quotation",
    "发送技术方案 / Send the technical proposal",
    "安排试切 / Arrange a test cut",
    "下月回访 / Call again next month",
    "邀请来公司参观 / Invite them to our showroom",
    "确认预算和决策人 / Confirm budget and decision maker",
)

# -- market research (P3.1.1) -----------------------------------------------------------------

# (author, kind, industry, region, competitor, title, body, days ago)
# fmt: off
MARKET_NOTES: tuple[tuple[str, str, str, str, str, str, str, int], ...] = (
    ("sales_li", "competitor", "machinery", "east", "东方数控 / Dongfang CNC",
     "东方数控立加降价约 8% / Dongfang CNC cut VMC prices by about 8 %",
     "在嘉定两家模具厂听说东方数控 VMC850 同级机型报价降到 33 万左右，交期 30 天。/ Two mould "
     "shops in Jiading were offered Dongfang's VMC850-class machine at about 330,000 yuan with "
     "30 days' delivery.", 76),
    ("sales_wang", "market", "energy", "east", "",
     "长三角电池厂二期扩产 / Battery makers in the Yangtze delta expand",
     "湖州、常州多家电池托盘厂下半年扩产，激光切割和焊接需求明显。/ Several battery-tray "
     "makers in Huzhou and Changzhou expand in H2: strong demand for laser cutting and welding.",
     70),
    ("sup_east", "policy", "manufacturing", "east", "",
     "设备更新贷款贴息政策 / Interest subsidy for equipment renewal",
     "省里对技改设备贷款贴息 1 个百分点，申报截止到季度末，可作为促单理由。/ The province "
     "subsidises loans for upgrade equipment by one point until the quarter's end: a reason "
     "for customers to order now.", 64),
    ("sales_zhao", "competitor", "electronics", "south", "德力机器人 / Deli Robotics",
     "德力机器人主推租赁模式 / Deli Robotics pushes leasing",
     "德力在佛山推出焊接机器人 36 个月租赁，首付 10%。中小客户感兴趣。/ Deli offers welding "
     "robots in Foshan on 36-month leases with 10 % down; small customers are interested.", 58),
    ("sales_liu", "market", "electronics", "south", "",
     "深圳消费电子订单回暖 / Consumer electronics orders pick up in Shenzhen",
     "宝安、龙岗的结构件厂订单回升，老设备更新意愿增强，预算多在二季度释放。/ Structural-part "
     "makers in Bao'an and Longgang see orders return; budgets for replacements mostly open in "
     "Q2.", 52),
    ("sales_li", "competitor", "energy", "east", "瑞锋激光 / Ruifeng Laser",
     "瑞锋激光低价抢单 / Ruifeng Laser undercuts on price",
     "临港项目中瑞锋激光 6kW 报价低我们约 12%，但质保只有 1 年。/ On the Lingang project "
     "Ruifeng quoted its 6 kW cutter about 12 % below us, with only one year's warranty.", 41),
    ("sales_zhao", "price", "manufacturing", "south", "", "钢材价格回落 / Steel prices fall",
     "热轧板价格比上月低约 5%，客户钣金件成本下降，有利于推动激光切割项目。/ Hot-rolled plate "
     "is about 5 % cheaper than last month; cheaper sheet metal helps laser-cutting projects.", 35),
    ("sup_south", "market", "automotive", "south", "",
     "广州汽车零部件二级供应商整合 / Tier-2 auto suppliers consolidate in Guangzhou",
     "花都、番禺的二级供应商在合并产线，采购决策上移到集团，需提前接触总部。/ Tier-2 suppliers "
     "in Huadu and Panyu are merging lines; purchasing moves to group level, so meet "
     "headquarters early.", 28),
    ("sales_wang", "competitor", "machinery", "east", "精诚机床 / Jingcheng Machine Tools",
     "精诚机床卧加交期延长到 120 天 / Jingcheng HMC lead time now 120 days",
     "萧山客户反馈精诚卧加交期 120 天，我们 HMC630 现货优势明显。/ A Xiaoshan customer says "
     "Jingcheng's HMC takes 120 days; our HMC630 from stock is a clear advantage.", 21),
    ("sales_liu", "policy", "energy", "south", "",
     "储能项目补贴细则发布 / Storage subsidy rules published",
     "广东储能项目补贴细则发布，储能柜厂商扩产意愿增强。/ Guangdong published its storage "
     "subsidy rules; cabinet makers plan more capacity.", 14),
    ("sales_li", "market", "medical", "east", "",
     "医疗器械集采推动降本 / Volume-based procurement pushes medical costs down",
     "骨科耗材集采后，浦江医疗等客户更关注单件加工成本和自动化。/ After volume-based "
     "procurement of orthopaedic implants, customers such as Pujiang care about cost per part "
     "and automation.", 9),
    ("sales_zhao", "competitor", "machinery", "south", "东方数控 / Dongfang CNC",
     "东方数控在佛山设服务站 / Dongfang CNC opens a service station in Foshan",
     "东方数控在佛山新设服务站，承诺 4 小时响应，我们需强调备件库存和工程师经验。/ Dongfang "
     "opened a Foshan station promising four-hour response; stress our spare parts stock and "
     "engineers' experience.", 4),
)
# fmt: on


@dataclass
class Stamps:
    """Creation times to write afterwards for records whose services have no ``now``."""

    rows: dict[Any, dict[int, datetime]] = field(default_factory=dict)

    def set(self, model: Any, record_id: int, moment: datetime) -> None:
        self.rows.setdefault(model, {})[record_id] = moment

    def write(self) -> None:
        for model, moments in self.rows.items():
            for record_id, moment in moments.items():
                db.session.execute(
                    sa.update(model)
                    .where(model.id == record_id)
                    .values(created_at=moment)
                    .execution_options(synchronize_session=False)
                )


class Quarter:
    """Builds the quarter; every time is ``days ago`` (local company days) and an hour."""

    def __init__(self, people: dict[str, User], now: datetime | None = None) -> None:
        self.now = now or utcnow()
        self.today = loops.local_today(self.now)
        self.zone = loops.portal_zone()
        self.rng = random.Random(SEED)
        self.people = people
        self.products: dict[str, Product] = {}
        self.customers: dict[str, Customer] = {}
        self.stamps = Stamps()
        self.phones: set[str] = set()
        self.created: dict[str, int] = {}
        self.tax_ids: set[str] = set()

    # -- time ----------------------------------------------------------------------------------

    def at(self, days_ago: float, hour: int = 10, minute: int = 0) -> datetime:
        """Company-local ``hour:minute`` on the day ``days_ago`` days before today, in
        UTC; never later than a few minutes ago."""
        day = self.today - timedelta(days=int(days_ago))
        moment = datetime.combine(day, time(hour, minute), tzinfo=self.zone).astimezone(UTC)
        return min(moment, self.now - timedelta(minutes=5))

    def day(self, days_ago: int) -> date:
        """The local date ``days_ago`` days before today (negative: ahead)."""
        return self.today - timedelta(days=days_ago)

    def person(self, username: str) -> User:
        return self.people[username]

    # -- products ------------------------------------------------------------------------------

    def make_products(self) -> None:
        from .quotes import save_product

        manager = self.person("manager")
        for code, name, category, unit, price, cost in PRODUCTS:
            product = save_product(
                None,
                {
                    "code": code,
                    "name": name,
                    "category": category,
                    "unit": unit,
                    "list_price": str(price),
                    "cost": str(cost),
                },
                manager,
            )
            self.products[code] = product
            self.stamps.set(Product, product.id, self.at(120, 9))

    # -- customers -----------------------------------------------------------------------------

    def _phone(self, city: City) -> str:
        while True:
            number = f"{city.area}-{self.rng.randint(5, 8)}{self.rng.randint(0, 9_999_999):07d}"
            if number not in self.phones:
                self.phones.add(number)
                return number

    def _tax_id(self, city: City) -> str:
        alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
        while True:
            body = "".join(self.rng.choice(alphabet) for _ in range(9))
            tax_id = (
                f"91{city.province}{self.rng.randint(1, 9):02d}00{body}{self.rng.choice(alphabet)}"
            )
            if tax_id not in self.tax_ids:
                self.tax_ids.add(tax_id)
                return tax_id

    def _values(
        self,
        name: str,
        en: str,
        industry: str,
        size: str,
        city_key: str,
        source: str,
        need: str,
        grade: str = "",
        stage: str = "prospect",
    ) -> dict[str, Any]:
        city = CITIES[city_key]
        return {
            "name": name,
            "phone": self._phone(city),
            "tax_id": self._tax_id(city) if self.rng.random() < 0.75 else "",
            "industry": industry,
            "size": size,
            "region": city.region,
            "city": city.zh,
            "address": f"{city.zh}市{self.rng.choice(ROADS)}{self.rng.randint(8, 888)}号",
            "source": source,
            "need": need,
            "grade": grade,
            "stage": stage,
            "notes": f"英文名 / English name: {en}",
        }

    def make_customer(self, firm: Firm, days_ago: int) -> Customer:
        from .customers import create_customer

        owner = self.person(firm.owner)
        values = self._values(
            firm.name,
            firm.en,
            firm.industry,
            firm.size,
            firm.city,
            firm.source,
            firm.need,
            firm.grade,
            firm.stage,
        )
        customer = create_customer(values, owner, owner=owner, now=self.at(days_ago, 9, 30))
        self.customers[firm.key] = customer
        self.created[firm.key] = days_ago
        self.make_contacts(customer, days_ago, 1 + (firm.grade in ("A", "B")))
        return customer

    def make_contacts(self, customer: Customer, days_ago: int, count: int) -> None:
        from .customers import save_contact

        titles = list(TITLES)
        self.rng.shuffle(titles)
        for position in range(count):
            surname, surname_en = self.rng.choice(SURNAMES)
            given, given_en = self.rng.choice(GIVEN)
            contact = save_contact(
                customer,
                {
                    "name": f"{surname}{given} / {surname_en} {given_en}",
                    "title": titles[position],
                    "phone": f"1{self.rng.choice('3589')}{self.rng.randint(0, 999_999_999):09d}",
                    "email": f"{given_en.lower()}.{surname_en.lower()}@c{customer.id}.example.com",
                    "is_primary": position == 0,
                },
            )
            self.stamps.set(ContactPerson, contact.id, self.at(days_ago, 9, 40 + position))

    # -- contacts and follow-ups ------------------------------------------------------------------

    def contact(
        self,
        customer: Customer,
        days_ago: int,
        kind: str,
        summary: str = "",
        *,
        hour: int = 10,
        details: str = "",
        location: str = "",
        next_step: str = "",
        follow_up_in: int | None = None,
        follow_up_on: date | None = None,
        opportunity: Opportunity | None = None,
    ) -> None:
        """Log one contact; the next follow-up ``follow_up_in`` days after it (or on
        ``follow_up_on``), else at the cadence of rules/follow_up.yaml."""
        from .customers import log_activity

        summary = summary or self.rng.choice(SUMMARIES[kind])
        if not details:
            zh, en = self.rng.choice(FOCUS)
            details = f"客户最关心{zh}。/ The customer cares most about {en}."
        if kind == "visit" and not location:
            city = next((c for c in CITIES.values() if c.zh == customer.city), None)
            location = f"{customer.city}客户工厂 / customer's plant, {city.en if city else ''}"
        day = follow_up_on
        if day is None and follow_up_in is not None:
            day = self.day(days_ago) + timedelta(days=follow_up_in)
        log_activity(
            customer,
            {
                "kind": kind,
                "summary": summary,
                "details": details,
                "location_note": location,
                "next_step": next_step or self.rng.choice(NEXT_STEPS),
                "next_follow_up_on": day,
                "opportunity_id": opportunity.id if opportunity is not None else None,
            },
            customer.owner,
            now=self.at(days_ago, hour, self.rng.choice((0, 10, 20, 30, 40, 50))),
        )

    # -- opportunities -------------------------------------------------------------------------

    def open_deal(self, key: str, days_ago: int, values: dict[str, Any]) -> Opportunity:
        from .pipeline import create_opportunity

        customer = self.customers[key]
        return create_opportunity(customer, values, customer.owner, now=self.at(days_ago, 11))

    def move(
        self, deal: Opportunity, stage: str, days_ago: int, hour: int = 15, **values: Any
    ) -> None:
        from .pipeline import move_to_stage

        move_to_stage(deal, stage, deal.owner, values, now=self.at(days_ago, hour))

    # -- quotations ----------------------------------------------------------------------------

    def quote(
        self,
        deal: Opportunity,
        days_ago: int,
        lines: Sequence[tuple[str, int, str]],
        *,
        method: str = "courier",
        terms: str = "30% 预付，余款到货后 30 天 / 30 % with order, rest 30 days after delivery",
        terms_days: int = 30,
        valid_days: int = 30,
        note: str = "",
    ) -> Quotation:
        """A draft quotation of (product code, quantity, discount percent) lines."""
        from .quotes import create_quotation

        moment = self.at(days_ago, 14)
        rows = [
            {
                "product_id": str(self.products[code].id),
                "quantity": str(quantity),
                "discount": discount,
            }
            for code, quantity, discount in lines
        ]
        header = {
            "valid_until": self.day(days_ago) + timedelta(days=valid_days),
            "delivery_method": method,
            "delivery_note": "含运输和保险 / Freight and insurance included",
            "payment_terms": terms,
            "payment_terms_days": str(terms_days),
            "notes": note or "价格含 13% 增值税 / Prices include 13 % VAT",
        }
        found = create_quotation(deal, header, rows, deal.owner, now=moment)
        self.stamps.set(Quotation, found.id, moment)
        return found

    def submit(
        self, found: Quotation, days_ago: int, hour: int = 15, *, wait: bool = False
    ) -> ApprovalRequest:
        """Submit the discount; the quotations meant to be within authority are approved
        at once by the shipped rule file, and by the approvers the same day should an
        edited file route them (``wait``: leave it waiting)."""
        from .quotes import submit_for_approval

        moment = self.at(days_ago, hour)
        request = submit_for_approval(found, found.owner, now=moment)
        self.stamps.set(ApprovalRequest, request.id, moment)
        if request.status == "pending" and not wait:
            self.decide(request, days_ago, "同意。/ Approved.", hour=hour + 1)
        return request

    def answer(self, found: Quotation, answer: str, days_ago: int, note: str = "") -> None:
        from .quotes import record_answer

        record_answer(found, answer, found.owner, note, now=self.at(days_ago, 16))

    def negotiate(self, found: Quotation, days_ago: int, text: str) -> None:
        from .quotes import add_note

        add_note(found, found.owner, text, now=self.at(days_ago, 17))

    def decide(
        self, request: ApprovalRequest, days_ago: int, comment: str = "", hour: int = 9
    ) -> None:
        """Every reviewer in turn approves (whoever the step waits for), two hours apart."""
        order = ("sup_east", "sup_south", "manager", "finance")
        while request.status == "pending":
            moment = self.at(days_ago, hour)
            actor = next(
                (
                    self.person(name)
                    for name in order
                    if approvals.can_act(request, self.person(name), moment)
                ),
                None,
            )
            if actor is None:
                raise RuntimeError(f"nobody can act on approval request {request.id}")
            approvals.act(request, actor, "approve", comment, now=moment)
            hour += 2

    # -- contracts -----------------------------------------------------------------------------

    def contract(
        self,
        found: Quotation,
        days_ago: int,
        *,
        title: str,
        starts: int,
        milestones: dict[str, int],
        instalments: Sequence[tuple[int, int]],
        terms_days: int = 30,
    ) -> Contract:
        """A draft contract from an accepted quotation, checklist ticked; dates are
        days ago (negative: ahead), instalments (days ago, fen)."""
        from .contracts import ContractValues, InstalmentRow, checklist_items, create_contract

        values = ContractValues(
            title=title,
            starts_on=self.day(starts),
            ends_on=self.day(min(d for d, _amount in instalments) - 30),
            payment_terms_days=terms_days,
            checklist={code: True for code in checklist_items()},
            milestones={kind: self.day(days) for kind, days in milestones.items()},
            instalments=[InstalmentRow(self.day(d), amount) for d, amount in instalments],
        )
        moment = self.at(days_ago, 10)
        made = create_contract(found, found.owner, values, now=moment)
        self.stamps.set(Contract, made.id, moment)
        return made

    def review(self, made: Contract, days_ago: int) -> ApprovalRequest:
        from .contracts import submit_for_review

        moment = self.at(days_ago, 11)
        request = submit_for_review(made, made.owner, now=moment)
        self.stamps.set(ApprovalRequest, request.id, moment)
        return request

    def sign(self, made: Contract, days_ago: int) -> None:
        from .contracts import sign_contract

        sign_contract(made, made.owner, self.day(days_ago), now=self.at(days_ago, 16))

    def milestone_done(self, made: Contract, kind: str, days_ago: int, note: str) -> None:
        from .contracts import mark_milestone_done

        milestone = db.session.scalars(
            sa.select(Milestone).where(Milestone.contract_id == made.id, Milestone.kind == kind)
        ).one()
        mark_milestone_done(made, milestone, made.owner, note, now=self.at(days_ago, 17))

    def paid(self, made: Contract, sequence: int, days_ago: int) -> None:
        from .contracts import record_payment

        instalment = db.session.scalars(
            sa.select(PaymentInstalment).where(
                PaymentInstalment.contract_id == made.id, PaymentInstalment.sequence == sequence
            )
        ).one()
        record_payment(
            made,
            self.person("finance"),
            instalment.amount_cents - instalment.paid_cents,
            self.day(days_ago),
            instalment.id,
            now=self.at(days_ago, 15),
        )

    # -- after-sales ------------------------------------------------------------------------------

    def feedback(self, key: str, received: datetime, values: dict[str, Any]) -> Any:
        from .aftersales import log_feedback

        customer = self.customers[key]
        return log_feedback(
            {"customer_id": customer.id, "received_at": received, **values},
            customer.owner,
            now=received + timedelta(minutes=20),
        )

    # -- the whole quarter ---------------------------------------------------------------------

    def build(self) -> None:
        """The quarter, section by section, in the caller's transaction."""
        self.make_products()
        self.make_market_notes()
        self.make_firms()
        self.story_huadong()
        self.story_hengli()
        self.story_lingang()
        self.story_qianjiang()
        self.story_nanfang()
        self.story_zhujiang()
        self.story_baoan()
        self.deals()
        self.plain_contacts()
        self.feedback_items()
        self.make_pool()
        self.verify_old_follow_ups()
        self.stamps.write()
        db.session.flush()

    def make_firms(self) -> None:
        """Every firm of the list: prospects created during the quarter, customers long
        before it."""
        for position, firm in enumerate(FIRMS):
            if firm.stage == "customer":
                created = 200 + (position * 37) % 600
            elif firm.plan in ("story", "deal"):
                created = 86 + position % 4
            else:
                created = 40 + (position * 11) % 48
            if firm.key in STORY_CREATED:
                created = STORY_CREATED[firm.key]
            self.make_customer(firm, created)

    # -- the stories ---------------------------------------------------------------------------

    def story_huadong(self) -> None:
        """Li Na's big deal: four VMC850 for Huadong Precision. Quoted at 5 % (her own
        authority), reviewed by supervisor, manager and finance (a new customer, over
        half a million), signed 55 days ago; delivered, installation due in three days,
        the deposit paid and the delivery instalment overdue; an open quality complaint
        since yesterday, not answered yet."""
        key = "huadong"
        customer = self.customers[key]
        self.contact(
            customer,
            87,
            "call",
            "展会后电话回访 / Follow-up call after the fair",
            details="客户在工博会看过 VMC850 试切，对刚性和精度满意。"
            "/ Saw the VMC850 cutting demo at the fair; liked its rigidity and accuracy.",
            next_step="约现场拜访 / Book a site visit",
            follow_up_in=3,
        )
        self.contact(
            customer,
            84,
            "visit",
            "参观二号厂房，现有 6 台老式立加 / Toured workshop 2: six ageing VMCs",
            location="上海市嘉定区华江路客户二号厂房 / Workshop 2, Huajiang Road, Jiading",
            next_step="整理需求，立项 / Write up the need, open the deal",
            follow_up_in=4,
        )
        deal = self.open_deal(
            key,
            83,
            {
                "name": "VMC850 加工中心扩产（4 台）/ Four VMC850 for the expansion",
                "amount": "1500000",
                "expected_close_on": self.day(45),
                "competitors": "东方数控 / Dongfang CNC",
            },
        )
        self.move(deal, "qualified", 82)
        self.move(
            deal,
            "needs_analysis",
            80,
            need_analysis="二号厂房扩产，汽车零件月产能需增加 30%；要求定位精度 0.008 mm，"
            "交期 60 天内。/ Workshop 2 expands: 30 % more automotive parts a month; "
            "positioning accuracy 0.008 mm; delivery within 60 days.",
            decision_maker="周建华 设备部部长；总经理审批 / Zhou Jianhua, head of equipment; "
            "the GM signs",
        )
        self.contact(
            customer,
            78,
            "meeting",
            "技术交流会：工艺与刀具方案 / Technical meeting: process and tooling",
            opportunity=deal,
            follow_up_in=5,
        )
        self.move(
            deal,
            "proposal",
            75,
            proposed_solution="VMC850 ×4，含第四轴预留、安装调试 8 人天、操作培训。"
            "/ Four VMC850 prepared for a fourth axis, 8 person-days of installation and "
            "commissioning, operator training.",
            amount="1417600",
        )
        found = self.quote(
            deal,
            72,
            [("VMC-850", 4, "5"), ("SVC-INST", 8, "0")],
            method="installation",
            terms="30% 预付，40% 到货，30% 验收后 30 天 / 30 % with the order, 40 % on delivery, "
            "30 % 30 days after acceptance",
            valid_days=45,
        )
        self.submit(found, 72)
        self.answer(found, "sent", 71)
        self.move(deal, "negotiation", 70)
        self.negotiate(
            found,
            66,
            "客户要求 8% 折扣；说明 5% 已是最低，可加送操作培训一期。"
            "/ They asked for 8 %; explained 5 % is our best, offered one training "
            "course free.",
        )
        self.contact(
            customer,
            66,
            "visit",
            "商务谈判 / Price negotiation",
            opportunity=deal,
            location="上海市嘉定区华江路客户办公楼 / Customer's office, Jiading",
            follow_up_in=6,
        )
        self.answer(
            found,
            "accepted",
            60,
            "客户采购部邮件确认 / Confirmed by their purchasing department by email",
        )
        amount = found.total_cents
        deposit = amount * 30 // 100
        second = amount * 40 // 100
        made = self.contract(
            found,
            59,
            title="VMC850 立式加工中心 4 台采购合同 / Purchase of four VMC850",
            starts=55,
            milestones={
                "delivery": 30,
                "installation": -3,
                "commissioning": -10,
                "acceptance": -20,
            },
            instalments=((55, deposit), (20, second), (-50, amount - deposit - second)),
        )
        self.review(made, 58)
        request = db.session.get(ApprovalRequest, made.approval_request_id)
        self.decide(request, 57, "条款与报价一致，同意。/ Terms match the quotation: approved.")
        self.sign(made, 55)
        self.paid(made, 1, 52)
        self.contact(
            customer,
            40,
            "call",
            "确认到货时间与场地准备 / Call: delivery date and site readiness",
            opportunity=deal,
            follow_up_in=8,
        )
        self.milestone_done(
            made,
            "delivery",
            31,
            "4 台设备已到货，客户签收送货单。"
            "/ Four machines delivered; the delivery note is signed.",
        )
        self.contact(
            customer,
            31,
            "visit",
            "到货验收 / Delivery check on site",
            location="上海市嘉定区华江路客户二号厂房 / Workshop 2, Jiading",
            follow_up_in=5,
        )
        from .contracts import record_satisfaction

        record_satisfaction(
            made,
            made.owner,
            4,
            "到货及时，希望尽快安排安装。/ Delivered on time; wants installation soon.",
            now=self.at(27, 11),
        )
        self.contact(
            customer,
            12,
            "call",
            "催收第二期到货款 / Call: chasing the delivery instalment",
            details="财务说月底前走付款流程。/ Their finance promises to pay by the month's end.",
            follow_up_in=7,
        )
        self.contact(
            customer,
            4,
            "visit",
            "确认安装计划与地基 / Visit: installation plan and foundations",
            location="上海市嘉定区华江路客户二号厂房 / Workshop 2, Jiading",
            follow_up_on=self.day(-3),
        )
        # The open complaint: received 30 hours ago, nobody has answered it yet.
        received = self.now - timedelta(hours=30)
        self.feedback(
            key,
            received,
            {
                "contract_id": made.id,
                "kind": "complaint",
                "category": "quality",
                "priority": "high",
                "title": "2 号机主轴异响 / Spindle noise on machine no. 2",
                "description": "客户试运行时发现 2 号机主轴在 8000 rpm 以上有明显异响，"
                "已停机等待处理。/ During the trial run machine 2's spindle is noisy above "
                "8,000 rpm; the customer stopped it and waits for us.",
            },
        )

    def story_hengli(self) -> None:
        """Li Na's lathe for Hengli: v1 sent without discount, the customer pushed back,
        v2 with 4 % off the lathe (within her authority) accepted; the contract now
        waits for Zhang Wei's and finance's review."""
        key = "hengli"
        customer = self.customers[key]
        self.contact(
            customer, 69, "call", "老客户推荐，电话初步沟通 / Referred: first call", follow_up_in=4
        )
        self.contact(
            customer, 65, "visit", "查看车削工段 / Visit: the turning section", follow_up_in=3
        )
        deal = self.open_deal(
            key,
            64,
            {
                "name": "数控车床更新 / CNC lathe replacement",
                "amount": "205200",
                "expected_close_on": self.day(-10),
            },
        )
        self.move(deal, "qualified", 64, hour=16)
        self.move(
            deal,
            "needs_analysis",
            62,
            need_analysis="老车床精度下降，法兰件废品率 4%；希望 3 个月内更换。"
            "/ The old lathe lost accuracy: 4 % scrap on flanges; wants it replaced "
            "within three months.",
            decision_maker="钱伟明 总经理 / Qian Weiming, general manager",
            competitors="无 / none",
        )
        self.move(
            deal,
            "proposal",
            55,
            proposed_solution="CK460 数控车床 ×1 + 操作培训 + 安装 3 人天。"
            "/ One CK460 with operator training and 3 person-days of installation.",
        )
        first = self.quote(
            deal, 50, [("CK-460", 1, "0"), ("SVC-TRAIN", 1, "0"), ("SVC-INST", 3, "0")]
        )
        self.submit(first, 50)
        self.answer(first, "sent", 49)
        self.move(deal, "negotiation", 48)
        self.contact(
            customer,
            35,
            "call",
            "客户要求车床让利 / Call: they want a better price on the lathe",
            opportunity=deal,
            follow_up_in=7,
        )
        self.negotiate(
            first,
            35,
            "客户希望车床优惠 5%；可给 4%，培训和安装不打折。"
            "/ They want 5 % off the lathe; 4 % is possible, training and "
            "installation at list price.",
        )
        from .quotes import revise, update_quotation

        second = revise(first, deal.owner, now=self.at(34, 10))
        self.stamps.set(Quotation, second.id, self.at(34, 10))
        update_quotation(
            second,
            {"valid_until": self.day(34) + timedelta(days=45)},
            [
                {"product_id": str(self.products["CK-460"].id), "quantity": "1", "discount": "4"},
                {
                    "product_id": str(self.products["SVC-TRAIN"].id),
                    "quantity": "1",
                    "discount": "0",
                },
                {"product_id": str(self.products["SVC-INST"].id), "quantity": "3", "discount": "0"},
            ],
            deal.owner,
            now=self.at(34, 10),
        )
        self.submit(second, 34, hour=11)
        self.answer(second, "sent", 33)
        self.contact(
            customer,
            30,
            "visit",
            "技术确认与付款条件 / Visit: technical sign-off and payment terms",
            opportunity=deal,
            follow_up_in=10,
        )
        self.answer(second, "accepted", 8, "总经理签字确认 / Signed off by their GM")
        from .pipeline import update_opportunity

        update_opportunity(deal, {"amount": str(yuan(second.total_cents))}, deal.owner)
        amount = second.total_cents
        deposit = amount * 30 // 100
        made = self.contract(
            second,
            5,
            title="CK460 数控车床采购合同 / Purchase of a CK460 CNC lathe",
            starts=-7,
            milestones={"delivery": -21, "acceptance": -35},
            instalments=((-7, deposit), (-65, amount - deposit)),
        )
        self.review(made, 3)
        self.contact(
            customer,
            3,
            "email",
            "发送合同文本供客户法务审阅 / Email: contract text for their legal review",
            opportunity=deal,
            follow_up_in=5,
        )

    def story_lingang(self) -> None:
        """Lost to a cheaper competitor: the quotation declined, the deal lost with its
        reason; Li keeps in touch for phase two."""
        key = "lingang"
        customer = self.customers[key]
        self.contact(customer, 79, "call", follow_up_in=3)
        self.contact(
            customer, 76, "visit", "法兰下料车间调研 / Visit: flange blanking shop", follow_up_in=2
        )
        deal = self.open_deal(
            key,
            75,
            {
                "name": "风电法兰激光切割 / Laser cutting for wind-turbine flanges",
                "amount": "1040000",
                "expected_close_on": self.day(40),
                "competitors": "瑞锋激光 / Ruifeng Laser",
            },
        )
        self.move(deal, "qualified", 74)
        self.move(
            deal,
            "needs_analysis",
            70,
            need_analysis="厚板（20-30 mm）法兰下料，替换等离子切割。/ Blanking 20-30 mm "
            "flanges instead of plasma cutting.",
            decision_maker="孙立新 副总经理 / Sun Lixin, deputy GM",
        )
        self.move(
            deal,
            "proposal",
            65,
            proposed_solution="LSR-3015 6 kW ×2，含排版软件。/ Two 6 kW LSR-3015 with nesting "
            "software.",
        )
        found = self.quote(deal, 62, [("LSR-3015", 2, "4")], method="freight")
        self.submit(found, 62)
        self.answer(found, "sent", 61)
        self.move(deal, "negotiation", 60)
        self.contact(
            customer,
            45,
            "call",
            "客户反馈竞品报价低 12% / Call: a competitor is 12 % cheaper",
            opportunity=deal,
            follow_up_in=5,
        )
        self.answer(
            found,
            "declined",
            40,
            "客户选择瑞锋激光，报价低约 12%。/ They chose Ruifeng Laser, about 12 % cheaper.",
        )
        self.move(
            deal,
            "lost",
            40,
            lost_reason="competitor",
            lost_note="瑞锋激光低价中标，质保仅 1 年；二期项目继续跟进。/ Ruifeng won on price "
            "with a one-year warranty; keep in touch for phase two.",
        )
        self.contact(
            customer,
            18,
            "call",
            "保持联系，了解二期项目 / Call: keeping in touch about phase two",
            follow_up_on=self.day(-12),
        )

    def story_qianjiang(self) -> None:
        """Wang Fang's laser cutter for Qianjiang Auto: 8 % off is above her 5 %, so the
        quotation waits for Zhang Wei's approval."""
        key = "qianjiang"
        customer = self.customers[key]
        self.contact(
            customer, 83, "call", "展会后电话回访 / Follow-up call after the fair", follow_up_in=3
        )
        self.contact(customer, 80, "visit", follow_up_in=2)
        deal = self.open_deal(
            key,
            78,
            {
                "name": "6 kW 光纤激光切割机 / 6 kW fibre laser cutter",
                "amount": "544000",
                "expected_close_on": self.day(-20),
                "competitors": "瑞锋激光 / Ruifeng Laser",
            },
        )
        self.move(deal, "qualified", 77)
        self.move(
            deal,
            "needs_analysis",
            74,
            need_analysis="底盘件下料由冲床改激光，减少模具费用；板厚 2-12 mm。/ Move chassis "
            "blanking from presses to laser to save die costs; 2-12 mm plate.",
            decision_maker="杨永刚 制造部总监 / Yang Yonggang, manufacturing director",
        )
        self.move(
            deal,
            "proposal",
            66,
            proposed_solution="LSR-3015 6 kW ×1，安装调试 10 人天。/ One 6 kW LSR-3015 with "
            "10 person-days of installation.",
        )
        self.contact(
            customer,
            60,
            "meeting",
            "客户来公司看切割演示 / Meeting: cutting demo at our showroom",
            opportunity=deal,
            follow_up_in=10,
        )
        self.contact(customer, 40, "call", opportunity=deal, follow_up_in=14)
        found = self.quote(
            deal,
            10,
            [("LSR-3015", 1, "8"), ("SVC-INST", 10, "0")],
            method="installation",
            valid_days=30,
        )
        self.move(deal, "negotiation", 9)
        self.contact(
            customer,
            3,
            "visit",
            "采购坚持 8% 折扣 / Visit: purchasing insists on 8 %",
            opportunity=deal,
            follow_up_in=4,
        )
        self.negotiate(
            found,
            2,
            "客户采购要求 8% 折扣，否则转向瑞锋；已报主管审批。"
            "/ Purchasing wants 8 % or they go to Ruifeng; sent to my supervisor "
            "for approval.",
        )
        self.submit(found, 1, hour=16, wait=True)

    def story_nanfang(self) -> None:
        """Zhao Lei's bending and welding cell: 7 % approved by Chen Jing, sent."""
        key = "nanfang"
        customer = self.customers[key]
        self.contact(
            customer, 74, "call", "合作伙伴推荐 / Call: referred by a partner", follow_up_in=3
        )
        self.contact(customer, 70, "visit", follow_up_in=2)
        deal = self.open_deal(
            key,
            68,
            {
                "name": "钣金折弯焊接单元 / Bending and welding cell",
                "amount": "561000",
                "expected_close_on": self.day(-15),
                "competitors": "德力机器人 / Deli Robotics",
            },
        )
        self.move(deal, "qualified", 67)
        self.move(
            deal,
            "needs_analysis",
            60,
            need_analysis="折弯和焊接靠人工，招工难；希望一个单元替代 6 名工人。/ Bending and "
            "welding by hand, hard to hire; one cell should replace six workers.",
            decision_maker="何德军 总经理 / He Dejun, general manager",
        )
        self.move(
            deal,
            "proposal",
            45,
            proposed_solution="PBR-110 折弯机 ×2 + ROB-W20 焊接机器人 ×1。/ Two PBR-110 press "
            "brakes and one ROB-W20 welding robot.",
        )
        self.contact(
            customer,
            44,
            "email",
            "发送方案和投资回报测算 / Email: proposal and payback estimate",
            opportunity=deal,
            follow_up_in=10,
        )
        found = self.quote(deal, 20, [("PBR-110", 2, "7"), ("ROB-W20", 1, "7")], method="freight")
        request = self.submit(found, 19, wait=True)
        self.decide(
            request,
            18,
            "同意，客户为长期合作伙伴推荐。/ Approved: referred by a long-standing partner.",
        )
        self.move(deal, "negotiation", 18, hour=17)
        self.answer(found, "sent", 16)
        self.contact(
            customer,
            5,
            "call",
            "客户内部走采购流程 / Call: their purchasing process is under way",
            opportunity=deal,
            follow_up_on=self.day(-4),
        )

    def story_zhujiang(self) -> None:
        """Zhao Lei's completed conveyor contract with Zhujiang Electronics, a customer of
        two years: delivered, installed, accepted, paid and scored 5/5; then a quality
        complaint closed with cause, action, the customer's confirmation and a verified
        corrective action."""
        key = "zhujiang"
        customer = self.customers[key]
        self.contact(
            customer,
            89,
            "visit",
            "SMT 车间物流改造调研 / Visit: SMT workshop logistics",
            follow_up_in=2,
        )
        deal = self.open_deal(
            key,
            88,
            {
                "name": "SMT 车间自动化输送线 / SMT workshop conveyor line",
                "amount": "616144",
                "expected_close_on": self.day(75),
                "competitors": "无 / none",
            },
        )
        self.move(deal, "qualified", 88, hour=16)
        self.move(
            deal,
            "needs_analysis",
            86,
            need_analysis="两条 SMT 线间物料靠人工周转，需 120 米输送线联通。/ Material moves "
            "between two SMT lines by hand: 120 m of conveyor to link them.",
            decision_maker="林春燕 厂长 / Lin Chunyan, plant manager",
        )
        self.move(
            deal,
            "proposal",
            84,
            proposed_solution="模块化输送线 120 米、PLC 电控柜 2 台、伺服 24 套。/ 120 m of "
            "modular conveyor, two PLC cabinets, 24 servo drives.",
        )
        found = self.quote(
            deal,
            82,
            [("CNV-M1", 120, "3"), ("PLC-CAB", 2, "3"), ("SRV-1K5", 24, "3")],
            method="installation",
        )
        self.submit(found, 82)
        self.answer(found, "sent", 81)
        self.move(deal, "negotiation", 80)
        self.answer(found, "accepted", 77, "厂长签字 / Signed by the plant manager")
        amount = found.total_cents
        deposit = amount * 30 // 100
        made = self.contract(
            found,
            76,
            title="SMT 车间输送线合同 / SMT workshop conveyor line",
            starts=73,
            milestones={"delivery": 60, "installation": 52, "commissioning": 47, "acceptance": 41},
            instalments=((73, deposit), (10, amount - deposit)),
        )
        self.review(made, 75)
        request = db.session.get(ApprovalRequest, made.approval_request_id)
        self.decide(request, 74, "同意。/ Approved.")
        self.sign(made, 73)
        self.paid(made, 1, 71)
        self.milestone_done(
            made, "delivery", 61, "输送线模块全部到货 / All conveyor modules delivered"
        )
        from .contracts import complete_contract, record_satisfaction

        record_satisfaction(
            made,
            made.owner,
            5,
            "到货比计划提前，包装完好。/ Delivered ahead of plan and well packed.",
            now=self.at(56, 10),
        )
        self.milestone_done(made, "installation", 52, "安装完成 / Installed")
        self.contact(
            customer, 50, "visit", "安装进度检查 / Visit: installation progress", follow_up_in=10
        )
        self.milestone_done(
            made, "commissioning", 48, "联调完成，试运行 3 天 / Commissioned, three-day trial run"
        )
        self.milestone_done(
            made, "acceptance", 41, "客户签署验收单 / Acceptance certificate signed"
        )
        # A quality complaint after acceptance, handled to the end.
        received = self.at(30, 9, 15)
        record = self.feedback(
            key,
            received,
            {
                "contract_id": made.id,
                "kind": "complaint",
                "category": "quality",
                "priority": "high",
                "title": "输送线 3 号段伺服过热报警 / Servo overheating alarm on section 3",
                "description": "连续运行 6 小时后 3 号段伺服驱动器过热报警停线。/ After six "
                "hours' running the section-3 servo drives overheat and stop the line.",
            },
        )
        self.handle_complaint(record, zhao=made.owner)
        self.paid(made, 2, 12)
        complete_contract(made, made.owner, now=self.at(12, 17))
        self.contact(
            customer,
            11,
            "call",
            "回访：输送线运行稳定 / Call: the line runs smoothly",
            follow_up_in=30,
        )

    def handle_complaint(self, record: Any, zhao: User) -> None:
        """Respond, cause and action, corrective action raised, closed and verified, the
        customer's confirmation, closed, the complaint's item verified."""
        from .aftersales import (
            close_record,
            raise_corrective_action,
            record_cause,
            record_confirmation,
            respond,
        )

        boss = supervisor_of(zhao)
        respond(
            record,
            zhao,
            "已电话回复客户，工程师明早到现场。/ Called the customer back: an "
            "engineer is on site tomorrow morning.",
            now=self.at(30, 10, 40),
        )
        record_cause(
            record,
            zhao,
            "驱动器参数未按实际负载重新整定，电流偏高。/ Drive parameters were not retuned "
            "for the actual load: the current ran too high.",
            "现场重新整定 24 台驱动器参数，加装柜内散热风扇。/ Retuned all 24 drives on site "
            "and added cabinet fans.",
            now=self.at(28, 16),
        )
        item = raise_corrective_action(
            record,
            zhao,
            title="出厂调试规范增加负载整定步骤 / Add load tuning to the commissioning procedure",
            due_on=self.day(14),
            description="修订调试作业指导书，所有伺服项目按实际负载整定并记录电流。"
            "/ Revise the commissioning instructions: tune every servo project to its real "
            "load and record the current.",
            now=self.at(28, 17),
        )
        loops.close(
            item,
            zhao,
            "调试作业指导书 V2.1 已发布，并培训 5 名调试工程师。/ Commissioning instruction "
            "V2.1 released; five engineers trained.",
            "文件编号 QA-WI-017 V2.1 / Document QA-WI-017 V2.1",
            now=self.at(24, 15),
        )
        loops.verify(
            item,
            boss,
            "已抽查两个项目记录。/ Checked the records of two projects.",
            now=self.at(23, 10),
        )
        record_confirmation(
            record,
            zhao,
            "刘工 设备部 / Mr Liu, equipment department",
            "电话确认连续运行 7 天无报警。/ Confirmed by phone: seven days without an alarm.",
            now=self.at(21, 11),
        )
        close_record(record, zhao, now=self.at(21, 11, 30))
        complaint_item = db.session.get(LoopItem, record.loop_item_id)
        loops.verify(
            complaint_item,
            boss,
            "原因与措施清楚，客户已确认。/ Cause and action are clear; the customer confirmed.",
            now=self.at(20, 9),
        )

    def story_baoan(self) -> None:
        """Liu Yang's horizontal machining centre for Bao'an: 3 % (within authority)
        approved at once and sent; negotiating."""
        key = "baoan"
        customer = self.customers[key]
        self.contact(customer, 62, "call", follow_up_in=4)
        deal = self.open_deal(
            key,
            60,
            {
                "name": "HMC630 卧式加工中心 / HMC630 horizontal machining centre",
                "amount": "1241600",
                "expected_close_on": self.day(-14),
                "competitors": "精诚机床 / Jingcheng Machine Tools",
            },
        )
        self.move(deal, "qualified", 58)
        self.contact(
            customer,
            55,
            "visit",
            "箱体件工艺评审 / Visit: process review of housings",
            opportunity=deal,
            follow_up_in=5,
        )
        self.move(
            deal,
            "needs_analysis",
            50,
            need_analysis="大型箱体件四面加工，现外协周期长。/ Large housings machined on four "
            "faces; subcontracting takes too long.",
            decision_maker="郑文斌 总经理 / Zheng Wenbin, general manager",
        )
        self.move(
            deal,
            "proposal",
            40,
            proposed_solution="HMC630 卧加 ×1，双交换工作台。/ One HMC630 with twin pallet "
            "changer.",
        )
        found = self.quote(deal, 25, [("HMC-630", 1, "3")], method="installation", valid_days=45)
        self.submit(found, 25)
        self.answer(found, "sent", 24)
        self.move(deal, "negotiation", 24, hour=17)
        self.contact(
            customer,
            7,
            "meeting",
            "客户来访，谈交期和付款 / Meeting: delivery and payment",
            opportunity=deal,
            follow_up_in=10,
        )

    def deals(self) -> None:
        """The other opportunities, one in each open stage or lost."""
        plans = (
            (
                "shenlian",
                "lead",
                30,
                "新能源副车架焊接线 / Welding line for EV subframes",
                "2400000",
                -120,
                {},
            ),
            (
                "demei",
                "needs_analysis",
                70,
                "SMT 治具加工中心 / Machining centres for SMT fixtures",
                "936000",
                -45,
                {
                    "need_analysis": "3 台老设备精度下降，治具返工率 6%。/ Three old machines "
                    "have lost accuracy; 6 % of fixtures are reworked.",
                    "decision_maker": "陈志强 生产总监 / Chen Zhiqiang, production director",
                },
            ),
            (
                "pujiang",
                "proposal",
                75,
                "骨科植入物精密车削 / Precision turning of orthopaedic implants",
                "384000",
                -30,
                {
                    "need_analysis": "钛合金骨钉批量加工，要求 IT6 精度。/ Titanium bone screws "
                    "in batches, IT6 tolerance.",
                    "decision_maker": "黄丽 技术部经理 / Huang Li, head of engineering",
                    "proposed_solution": "CK460 数控车床 ×2 + 操作培训。/ Two CK460 lathes "
                    "with operator training.",
                },
            ),
            (
                "beilun",
                "qualified",
                50,
                "模具型腔加工中心 / Machining centre for mould cavities",
                "468000",
                -60,
                {},
            ),
            (
                "xiaoshan",
                "proposal",
                72,
                "卧式加工中心替换 / Replace the horizontal machining centre",
                "1328000",
                -25,
                {
                    "need_analysis": "老卧加故障频繁，停机影响交期。/ The old HMC breaks down "
                    "often and delays orders.",
                    "decision_maker": "沈国平 副总经理 / Shen Guoping, deputy GM",
                    "proposed_solution": "HMC630 ×1 + 年度维保。/ One HMC630 with a yearly "
                    "maintenance contract.",
                },
            ),
            (
                "keqiao",
                "lost",
                70,
                "纺机零件加工中心 / Machining centre for textile machine parts",
                "368000",
                10,
                {
                    "need_analysis": "纺机零件订单增长，需新增一台立加。/ More textile-machine "
                    "parts: one more VMC.",
                    "decision_maker": "郭立新 厂长 / Guo Lixin, plant manager",
                    "lost_reason": "no_budget",
                    "lost_note": "客户 2026 年技改预算被砍。/ Their 2026 upgrade budget was cut.",
                },
            ),
            (
                "nanhu",
                "lead",
                20,
                "贴片线伺服改造 / Servo retrofit of the SMT line",
                "136000",
                -90,
                {},
            ),
            (
                "changxing",
                "needs_analysis",
                65,
                "电池托盘激光切割 / Laser cutting of battery trays",
                "1040000",
                -75,
                {
                    "need_analysis": "二期产线下半年投产，需 2 台 6 kW 激光切割。/ Phase 2 starts "
                    "in H2: two 6 kW laser cutters.",
                    "decision_maker": "吴海峰 设备部长 / Wu Haifeng, head of equipment",
                },
            ),
            (
                "panyu",
                "proposal",
                66,
                "汽车模具加工中心 / Machining centres for automotive dies",
                "936000",
                -40,
                {
                    "need_analysis": "覆盖件模具订单排到半年后，需扩产。/ Body-die orders are "
                    "booked six months out: more capacity.",
                    "decision_maker": "梁振华 总经理 / Liang Zhenhua, general manager",
                    "proposed_solution": "VMC1160 ×2。/ Two VMC1160.",
                },
            ),
            (
                "changan",
                "lost",
                65,
                "注塑件去毛刺机器人 / Deburring robots",
                "490000",
                25,
                {
                    "need_analysis": "人工去毛刺效率低。/ Manual deburring is slow.",
                    "decision_maker": "唐雪芳 副总经理 / Tang Xuefang, deputy GM",
                    "proposed_solution": "ROB-W20 ×2 改去毛刺工作站。/ Two ROB-W20 as deburring "
                    "cells.",
                    "quote": (("ROB-W20", 2, "0"),),
                    "lost_reason": "price",
                    "lost_note": "客户嫌价格高，改买二手设备。/ Too expensive: they bought "
                    "second-hand machines.",
                },
            ),
            (
                "huangpu",
                "qualified",
                45,
                "医疗外壳钣金 / Sheet metal for medical housings",
                "158000",
                -50,
                {},
            ),
            (
                "shunde",
                "lead",
                15,
                "空压站节能改造 / Energy-saving air-compressor station",
                "480000",
                -100,
                {},
            ),
            (
                "nanshan",
                "needs_analysis",
                58,
                "机器人焊接工作站 / Robot welding stations",
                "735000",
                -55,
                {
                    "need_analysis": "结构件焊接招工难，焊缝一致性差。/ Hard to hire welders; "
                    "welds vary.",
                    "decision_maker": "罗晓东 制造副总 / Luo Xiaodong, VP manufacturing",
                },
            ),
            (
                "songshanhu",
                "proposal",
                62,
                "机器人本体零件精加工 / Precision machining of robot arm parts",
                "773000",
                -20,
                {
                    "need_analysis": "关节壳体精度要求高，外协不稳定。/ Joint housings need high "
                    "accuracy; subcontractors are unreliable.",
                    "decision_maker": "徐佳琪 运营总监 / Xu Jiaqi, operations director",
                    "proposed_solution": "VMC850 ×2 + 主轴备件包。/ Two VMC850 with spindle "
                    "spare kits.",
                },
            ),
            (
                "zhongkai",
                "lost",
                80,
                "新车间压缩空气系统 / Compressed air for the new workshop",
                "288000",
                20,
                {
                    "need_analysis": "新车间需 3 台 75 kW 空压机。/ The new workshop needs three "
                    "75 kW compressors.",
                    "decision_maker": "马永刚 基建部 / Ma Yonggang, construction department",
                    "proposed_solution": "ACP-75 ×3。/ Three ACP-75.",
                    "lost_reason": "no_decision",
                    "lost_note": "新车间项目推迟到明年。/ The new workshop is postponed to next "
                    "year.",
                },
            ),
            (
                "longgang",
                "qualified",
                40,
                "PLC 电控柜升级 / PLC cabinet upgrade",
                "204000",
                -35,
                {},
            ),
            (
                "humen",
                "lead",
                12,
                "冲压件改激光切割 / Laser cutting instead of stamping",
                "520000",
                -80,
                {},
            ),
        )
        order = ("lead", "qualified", "needs_analysis", "proposal", "negotiation")
        for key, target, start, name, amount, close, extra in plans:
            customer = self.customers[key]
            self.contact(customer, start + 2, "call", follow_up_in=3)
            deal = self.open_deal(
                key,
                start,
                {
                    "name": name,
                    "amount": amount if target != "lead" else "",
                    "expected_close_on": self.day(close),
                },
            )
            last_open = target if target != "lost" else "proposal"
            if "proposed_solution" not in extra and target == "lost":
                last_open = "needs_analysis"
            steps = order[1 : order.index(last_open) + 1]
            days = start
            for stage in steps:
                days -= 3 + self.rng.randint(0, 4)
                values = {}
                if stage == "needs_analysis":
                    values = {
                        "need_analysis": extra["need_analysis"],
                        "decision_maker": extra["decision_maker"],
                    }
                elif stage == "proposal":
                    values = {"proposed_solution": extra["proposed_solution"]}
                self.move(deal, stage, days, **values)
                if stage == "needs_analysis":
                    self.contact(customer, days, "visit", opportunity=deal, hour=10, follow_up_in=5)
            if "quote" in extra:
                days -= 3
                found = self.quote(deal, days, extra["quote"])
                self.submit(found, days)
                self.answer(found, "sent", days - 1)
                self.move(deal, "negotiation", days - 1, hour=17)
                days -= 6
                self.answer(found, "declined", min(days, close + 1), extra["lost_note"])
            if target == "lost":
                self.move(
                    deal,
                    "lost",
                    close,
                    hour=18,
                    lost_reason=extra["lost_reason"],
                    lost_note=extra["lost_note"],
                )
            # The last contact: recent, its next follow-up ahead.
            last = self.rng.randint(2, min(12, start - 1))
            self.contact(
                customer,
                last,
                self.rng.choice(("call", "email", "visit")),
                opportunity=deal if target != "lost" else None,
                follow_up_on=self.day(-self.rng.randint(2, 12)),
            )

    def plain_contacts(self) -> None:
        """The firms without a story: a few contacts over the quarter; for the ones
        planned ``overdue`` the last follow-up date has passed."""
        busy = set(STORY_CREATED) | set(DEAL_KEYS)
        for firm in FIRMS:
            if firm.key in busy:
                continue
            customer = self.customers[firm.key]
            created = self.created[firm.key]
            first = min(created - 1, 85)
            count = (
                1 + self.rng.randint(1, 3) if firm.stage == "customer" else self.rng.randint(1, 3)
            )
            last = self.rng.randint(14, 24) if firm.plan == "overdue" else self.rng.randint(1, 20)
            span = max(first - last, 1)
            days = sorted(
                {last + self.rng.randint(0, span) for _ in range(count - 1)} | {last}, reverse=True
            )
            for position, days_ago in enumerate(days):
                final = position == len(days) - 1
                if not final:
                    follow = {"follow_up_in": self.rng.randint(3, 12)}
                elif firm.plan == "overdue":
                    follow = {"follow_up_in": self.rng.randint(4, 8)}
                else:
                    follow = {"follow_up_on": self.day(-self.rng.randint(1, 14))}
                kind = self.rng.choice(("call", "call", "email", "visit", "visit", "meeting"))
                self.contact(customer, days_ago, kind, hour=9 + self.rng.randint(0, 8), **follow)

    def feedback_items(self) -> None:
        """Feedback and a second complaint at various stages."""
        from .aftersales import record_cause, respond

        praise = self.feedback(
            "zhenhai",
            self.at(48, 14),
            {
                "kind": "feedback",
                "category": "service",
                "priority": "low",
                "title": "表扬维保工程师响应及时 / Praise for our maintenance engineer",
                "description": "客户设备部来电表扬周末上门处理主轴报警。/ Their equipment "
                "department called to thank us for fixing a spindle alarm on a weekend.",
            },
        )
        respond(
            praise,
            praise.owner,
            "已转达服务部并致谢。/ Passed on to the service team with thanks.",
            now=self.at(48, 16),
        )
        from .aftersales import close_record

        close_record(praise, praise.owner, now=self.at(47, 10))
        shipping = self.feedback(
            "nanhai",
            self.at(4, 10),
            {
                "kind": "feedback",
                "category": "delivery",
                "priority": "normal",
                "title": "希望提前告知发货时间 / Wants advance notice of shipping dates",
                "description": "备件到货前未通知，仓库无人接收。/ Spare parts arrived "
                "unannounced and nobody was at the warehouse.",
            },
        )
        respond(
            shipping,
            shipping.owner,
            "已要求物流发货前一天短信通知。/ Asked logistics to text them a day before shipping.",
            now=self.at(4, 15),
        )
        self.feedback(
            "guangming",
            self.at(6, 11),
            {
                "kind": "feedback",
                "category": "usage",
                "priority": "normal",
                "title": "希望数控系统增加中文快捷键 / Asks for Chinese shortcut keys on the "
                "control",
                "description": "操作工反映常用功能菜单层级太深。/ Operators find the common "
                "functions buried too deep in the menus.",
            },
        )
        late = self.feedback(
            "baoshan",
            self.at(2, 9),
            {
                "kind": "complaint",
                "category": "service",
                "priority": "normal",
                "title": "维保上门延迟两天 / Maintenance visit two days late",
                "description": "约定周一上门保养，工程师周三才到。/ The service visit "
                "promised for Monday happened on Wednesday.",
            },
        )
        respond(
            late,
            late.owner,
            "已致歉并确认新的保养排期。/ Apologised and confirmed a new schedule.",
            now=self.at(2, 11),
        )
        record_cause(
            late,
            late.owner,
            "服务排班冲突，未及时通知客户。/ A scheduling clash nobody told the customer about.",
            "调整排班，上门前一天电话确认。/ New rota; we confirm by phone the day before.",
            now=self.at(1, 15),
        )
        self.contact(
            self.customers["baoshan"],
            1,
            "call",
            "就维保延迟致歉 / Call: apologised for the late service visit",
            hour=18,
            follow_up_on=self.day(-7),
        )

    def make_pool(self) -> None:
        """The shared pool: prospects the follow-up rules returned, ones their owners
        released with a reason, and an imported fair list nobody claimed yet."""
        from .customers import create_customer, release_to_pool

        sweep_reason = _("No contact recorded in time: returned by the follow-up rules.")
        for position, entry in enumerate(POOL):
            key, owner_name, name, en, industry, size, city, source, need, fate = entry
            values = self._values(name, en, industry, size, city, source, need)
            if owner_name is None:
                importer = self.person("sup_east")
                customer = create_customer(values, importer, owner=None, now=self.at(20, 14))
                self.customers[key] = customer
                self.make_contacts(customer, 20, 1)
                continue
            owner = self.person(owner_name)
            created = 82 - position * 3
            customer = create_customer(values, owner, owner=owner, now=self.at(created, 9))
            self.customers[key] = customer
            self.make_contacts(customer, created, 1)
            self.contact(customer, created - 1, "call", follow_up_in=7)
            if fate == "sweep":
                returned = created - 1 - 31
                with acting_as(SWEEP_ACTOR):
                    release_to_pool(customer, owner, sweep_reason, now=self.at(returned, 6))
                notify(
                    owner,
                    "sales.returned_to_pool",
                    _l("Back in the shared pool: %(name)s", name=customer.name),
                    f"- {customer.name}",
                    portal_path("sales_customers.pool"),
                )
            else:
                self.contact(customer, created - 8, "visit", follow_up_in=10)
                release_to_pool(customer, owner, fate, now=self.at(created - 15, 17))

    def make_market_notes(self) -> None:
        from .market import create_note

        for author, kind, industry, region, competitor, title, body, days_ago in MARKET_NOTES:
            note = create_note(
                {
                    "kind": kind,
                    "industry": industry,
                    "region": region,
                    "competitor": competitor,
                    "title": title,
                    "body": body,
                    "observed_on": self.day(days_ago),
                },
                self.person(author),
                now=self.at(days_ago, 18),
            )
            self.stamps.set(MarketNote, note.id, self.at(days_ago, 18))

    def verify_old_follow_ups(self) -> None:
        """Supervisors verified the follow-ups closed more than a week ago (the rest wait
        on their My work); the reminders for those are read."""
        cutoff = self.now - timedelta(days=7)
        items = db.session.scalars(
            sa.select(LoopItem)
            .where(LoopItem.type == "sales.follow_up", LoopItem.status == "done")
            .order_by(LoopItem.closed_at, LoopItem.id)
        ).all()
        bosses: dict[int, User | None] = {}
        links = []
        for item in items:
            closed = item.closed_at if item.closed_at.tzinfo else item.closed_at.replace(tzinfo=UTC)
            if closed >= cutoff:
                continue
            if item.owner_id not in bosses:
                bosses[item.owner_id] = supervisor_of(item.owner)
            boss = bosses[item.owner_id]
            if boss is None or not loops.may_verify(item, boss):
                continue
            when = min(closed + timedelta(days=1, hours=2), cutoff)
            loops.verify(item, boss, "", now=when)
            links.append(loops.loop_path(item.id))
        if links:
            db.session.execute(
                sa.update(Notification)
                .where(Notification.kind == "core.loop_to_verify", Notification.link.in_(links))
                .values(read_at=self.now)
                .execution_options(synchronize_session=False)
            )


# The firms whose opportunity ``Quarter.deals`` opens.
DEAL_KEYS = (
    "shenlian",
    "demei",
    "pujiang",
    "beilun",
    "xiaoshan",
    "keqiao",
    "nanhu",
    "changxing",
    "panyu",
    "changan",
    "huangpu",
    "shunde",
    "nanshan",
    "songshanhu",
    "zhongkai",
    "longgang",
    "humen",
)

# Days ago the story firms were created (the others are spread by position).
STORY_CREATED = {
    "huadong": 88,
    "hengli": 70,
    "lingang": 80,
    "qianjiang": 84,
    "nanfang": 75,
    "zhujiang": 730,
    "baoan": 63,
}


def _demo_people() -> dict[str, User] | None:
    found = {
        user.username: user
        for user in db.session.scalars(sa.select(User).where(User.username.in_(PEOPLE)))
    }
    missing = [name for name in PEOPLE if name not in found or not found[name].active]
    if missing:
        log.warning("sales demo skipped: the demo organisation lacks %s", ", ".join(missing))
        return None
    return found


def create_demo_sales(now: datetime | None = None) -> bool:
    """Create (once) the demo quarter in the caller's transaction; returns whether it
    did. A database that already has the demo's product list is left as it is."""
    first_code = PRODUCTS[0][0]
    if db.session.scalar(sa.select(Product.id).where(Product.code == first_code)) is not None:
        return False
    people = _demo_people()
    if people is None:
        return False
    Quarter(people, now).build()
    return True
