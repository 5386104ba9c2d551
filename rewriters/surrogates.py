"""Realistic, type-preserving surrogates, deterministic per tenant.

The seed of each surrogate is an HMAC of (tenant, label, value) under the gateway's secret key, so
the same person keeps the same surrogate across the turns of a conversation with no server state,
while nobody without the key can link a surrogate back to its value.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import string
import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta

from faker import Faker

from rewriters.names import gender_of

_CJK = re.compile(r"[\u3400-\u9fff]")
_DATE_FORMATS = (
    "%Y-%m-%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%Y/%m/%d",
    "%d/%m/%y",
    "%m/%d/%y",
    "%B %d, %Y",
    "%b %d, %Y",
    "%d %B %Y",
    "%d %b %Y",
    "%B %d %Y",
    "%Y年%m月%d日",
)
# Month names strptime does not know (it reads English only); same index = same month.
_MONTHS = {
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre".split(),
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember".split(),
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre".split(),
    "it": "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre dicembre".split(),
}
_MONTH_INDEX = {name.casefold(): (lang, i) for lang, names in reversed(_MONTHS.items()) for i, name in enumerate(names)}
_SPELLED_DATE = re.compile(
    r"^(?P<day>\d{1,2})(?P<suffix>er|\.|º)?(?P<sep1>\s+(?:de\s+)?)(?P<month>[^\W\d_]+)(?P<sep2>\s+(?:de\s+)?)(?P<year>\d{4})$"
)
_COMMON_HANZI = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红"


def _given_gender(token: str) -> str | None:
    return gender_of(token) or gender_of(token.split("-")[0])


def _is_cjk(value: str) -> bool:
    return bool(_CJK.search(value))


def _shape_preserving(value: str, rng: random.Random, keep_prefix: bool = True) -> str:
    """Same length and character classes: digits for digits, letters for letters, punctuation kept."""
    prefix = ""
    if keep_prefix:  # vendor prefixes like sk-, ghp_, xoxb- tell the model what kind of secret it is
        m = re.match(r"^[A-Za-z]{1,6}[-_]", value)
        prefix = m.group() if m else ""
    out = []
    for ch in value[len(prefix) :]:
        if ch.isdigit():
            out.append(rng.choice(string.digits))
        elif ch.isascii() and ch.isalpha():
            out.append(rng.choice(string.ascii_uppercase if ch.isupper() else string.ascii_lowercase))
        elif _is_cjk(ch):
            out.append(rng.choice(_COMMON_HANZI))
        else:
            out.append(ch)
    return prefix + "".join(out)


def _luhn_fix(digits: list[str]) -> list[str]:
    total = 0
    for i, d in enumerate(reversed(digits[:-1])):
        n = int(d) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    digits[-1] = str((10 - total % 10) % 10)
    return digits


def _keep_leading(value: str, fake: str, count: int) -> str:
    """Keep the first `count` digits of the original (a card's brand, a phone's country code)."""
    chars, kept = list(fake), 0
    for i, ch in enumerate(value):
        if kept == count:
            break
        if ch.isdigit():
            chars[i] = ch
            kept += 1
    return "".join(chars)


def _phone(value: str, rng: random.Random) -> str:
    fake = _shape_preserving(value, rng, keep_prefix=False)
    stripped = value.lstrip()
    keep = 2 if stripped.startswith(("+", "00")) else 1  # country code, or the trunk/mobile prefix (0..., 1...)
    return _keep_leading(value, fake, keep + (2 if stripped.startswith("00") else 0))


def _ssn(value: str, rng: random.Random) -> str:
    fake = _shape_preserving(value, rng, keep_prefix=False)
    first = next((i for i, c in enumerate(fake) if c.isdigit()), None)
    if first is None:
        return fake
    return fake[:first] + rng.choice("1234567") + fake[first + 1 :]


def _credit_card(value: str, rng: random.Random) -> str:
    fake = _keep_leading(value, _shape_preserving(value, rng, keep_prefix=False), 1)
    positions = [i for i, c in enumerate(fake) if c.isdigit()]
    if len(positions) < 12:
        return fake
    digits = _luhn_fix([fake[i] for i in positions])
    chars = list(fake)
    for i, d in zip(positions, digits, strict=True):
        chars[i] = d
    return "".join(chars)


def _iban(value: str, rng: random.Random) -> str:
    compact = re.sub(r"\s", "", value)
    if len(compact) < 15 or not compact[:2].isalpha():
        return _shape_preserving(value, rng)
    bban = _shape_preserving(compact[4:], rng, keep_prefix=False)
    country = compact[:2].upper()
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = f"{98 - int(numeric) % 97:02d}"
    fake = country + check + bban
    # put the original grouping back
    out, k = [], 0
    for ch in value:
        if ch.isspace():
            out.append(ch)
        else:
            out.append(fake[k])
            k += 1
    return "".join(out)


def _shift(rng: random.Random, day: date) -> date:
    try:
        return day + timedelta(days=rng.choice([-1, 1]) * rng.randint(45, 900))
    except OverflowError:
        return date(2000, 1, 1)


def _spelled_date(value: str) -> tuple[date, Callable[[date], str]] | None:
    """'3 mars 1985', '3. März 1985', '3 de marzo de 1985': the date, and how to write another one so."""
    match = _SPELLED_DATE.match(value.strip())
    known = _MONTH_INDEX.get(match.group("month").casefold()) if match else None
    if match is None or known is None:
        return None
    lang, month = known
    if lang in ("es", "it") and "de" not in match.group("sep1"):
        lang = "it"  # marzo, agosto... without "de" read as Italian
    try:
        parsed = date(int(match.group("year")), month + 1, int(match.group("day")))
    except ValueError:
        return None

    def render(day: date) -> str:
        suffix = match.group("suffix") or ""
        if suffix == "er" and day.day != 1:
            suffix = ""
        name = _MONTHS[lang][day.month - 1]
        return f"{day.day}{suffix}{match.group('sep1')}{name}{match.group('sep2')}{day.year}"

    return parsed, render


def parse_date(value: str) -> tuple[date, Callable[[date], str]] | None:
    """A date in one of the common numeric or spelled forms, and a function writing any date the same way."""
    spelled = _spelled_date(value)
    if spelled is not None:
        return spelled
    text = value.strip()
    for fmt in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        unpadded = ("%d" in fmt or "%m" in fmt) and re.match(r"^\d(?!\d)", text) is not None
        # "November 1, 1990", "1975年3月4日": no number of the original is zero-padded where one could be
        # (a one-digit number, or a spelled month's day), so none of ours is
        bare = (
            "%y" not in fmt
            and re.search(r"(?<!\d)0\d", text) is None
            and ("%B" in fmt or "%b" in fmt or "年" in fmt or re.search(r"(?<!\d)\d(?!\d)", text) is not None)
        )

        def render(day: date, fmt: str = fmt, unpadded: bool = unpadded, bare: bool = bare) -> str:
            out = day.strftime(fmt)
            if bare:
                return re.sub(r"(?<!\d)0(?=\d)", "", out)
            # strptime accepts "3/4/1975"; keep the unpadded look of the original when it had one
            return out[1:] if unpadded and out.startswith("0") else out

        return parsed, render
    return None


def _date(value: str, rng: random.Random) -> str:
    found = parse_date(value)
    if found is None:
        return _shape_preserving(value, rng)
    parsed, render = found
    return render(_shift(rng, parsed))


class SurrogateFactory:
    """Makes the surrogate of a tenant's value of a label; `attempt` varies it on collision.

    Built once per process (Faker's locale data is slow to load) and shared by requests.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._lock = threading.Lock()  # Faker instances are reseeded per call: one caller at a time
        self._fakers = {"en": Faker("en_US"), "zh": Faker("zh_CN")}
        self._generators: dict[str, Callable[[str, random.Random], str]] = {
            "PERSON": self._person,
            "EMAIL_ADDRESS": lambda v, r: self._faker(v, r, "en").safe_email(),
            "LOCATION": lambda v, r: self._faker(v, r).city(),
            "STREET_ADDRESS": lambda v, r: self._faker(v, r).street_address(),
            "ORGANIZATION": lambda v, r: self._faker(v, r).company(),
            "URL": lambda v, r: self._faker(v, r, "en").url(),
            "IP_ADDRESS": lambda v, r: self._faker(v, r, "en").ipv6() if ":" in v else self._faker(v, r).ipv4(),
            "CREDIT_CARD": _credit_card,
            "PHONE_NUMBER": _phone,
            "US_SSN": _ssn,
            "IBAN_CODE": _iban,
            "DATE_TIME": _date,
            "DATE_OF_BIRTH": _date,
        }

    def _rng(self, tenant: str, label: str, value: str, attempt: int) -> random.Random:
        key = "\x00".join([tenant, label, " ".join(value.casefold().split()), str(attempt)])
        digest = hmac.new(self._secret, key.encode(), hashlib.sha256).digest()
        return random.Random(int.from_bytes(digest[:16], "big"))

    def _faker(self, value: str, rng: random.Random, lang: str | None = None) -> Faker:
        faker = self._fakers[lang or ("zh" if _is_cjk(value) else "en")]
        faker.seed_instance(rng.getrandbits(64))
        return faker

    def _person(self, value: str, rng: random.Random) -> str:
        faker = self._faker(value, rng)
        if _is_cjk(value):
            return str(faker.name())
        tokens = value.split()
        if len(tokens) == 1:
            return str(faker.last_name())
        middle = [faker.first_name() for _ in tokens[1:-1]]
        # the same gender as the original's given name, so the model's pronouns still fit the person
        # a compound name first ("Jean-Pierre" is male where "Jean" alone is not), then its first part
        gender = next((g for t in tokens[:-1] if (g := _given_gender(t.rstrip(".")))), None)
        first = faker.first_name_female() if gender == "female" else faker.first_name_male() if gender else None
        return " ".join([first or faker.first_name(), *middle, faker.last_name()])

    def make(self, tenant: str, label: str, value: str, attempt: int = 0) -> str:
        rng = self._rng(tenant, label, value, attempt)
        generator = self._generators.get(label, _shape_preserving)
        with self._lock:
            return str(generator(value, rng))
