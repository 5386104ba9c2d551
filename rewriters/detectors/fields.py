"""Values in structured text, labelled by the name of their field.

Agent traffic carries personal data as records: tool-call arguments and results in JSON, CSV
exports, SQL INSERTs, YAML and .env files. There the field's name says what a value is more surely
than any reading of the value: "Mwangi" under `cognome`, "Öztürk" under `nachname`. This detector
finds (field name, value) pairs in five layouts and labels the value when its field's name means a
kind of personal data that the value's shape agrees with:

- JSON, Python and JavaScript objects: `"first_name": "Chidinma"`, `'dob': '1983-09-02'`;
- `key=value` (logs, .env, query strings) and `key: value` lines (YAML, INI, headers);
- delimited tables with a header row (comma, semicolon, tab or pipe; Markdown tables);
- SQL `INSERT INTO t (c1, c2) VALUES (...), (...)`.

Field names are matched on their words ("patientFirstName" -> patient, first, name), in the six
languages privgate serves. A generic field ("name", "nom", "cliente") labels a value only if the
value looks like a person's name, so `name: build` in a CI file stays as it is.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterator, Sequence

import regex

from rewriters.names import is_name_word
from rewriters.spans import Span

PERSON = "PERSON"

# Field-name words (accents folded, lower case) -> label. A field whose words contain one of these
# phrases (as consecutive words) gets its label; the first match in this order wins. A phrase written
# "=word" is a word too common elsewhere to count inside a longer name ("cap" but not "rate_cap").
_FIELDS = {
    "SECRET": """password, passwd, =pwd, passphrase, passwort, kennwort, mot de passe, =mdp, contrasena, =clave,
        密码, 口令, secret, client secret, api key, apikey, access key, secret key, private key, signing key,
        access token, refresh token, auth token, bearer token, id token, session token, token, chiave segreta,
        segreto, cle secrete, clave secreta, geheimnis""",
    "DATE_OF_BIRTH": """dob, date of birth, birth date, birthdate, birthday, =born, geburtsdatum, geburtstag,
        date naissance, date de naissance, fecha nacimiento, fecha de nacimiento, data nascita, data di nascita,
        出生日期, 生日""",
    "ID_NUMBER": """ssn, social security, national id, nino, passport, passeport, pasaporte, passaporto, reisepass,
        tax id, =tin, steuer id, steuernummer, =cpf, pesel, personalnr, id empleado, numero empleado, 工号,
        steuer identifikationsnummer, nif, =nie, dni, codice fiscale, =nir, insee, numero secu, securite sociale,
        svnr, sv nummer, versicherungsnummer, versichertennummer, nhs, mrn, medical record, patient id, health id,
        insurance number, insurance id, policy number, member id, employee id, employee number, personnel number,
        personalnummer, matricola, driver license, drivers license, driving licence, license number,
        licence number, id card, id number, identity number, 身份证, 护照""",
    "ACCOUNT_NUMBER": """iban, account number, account no, =acct, acct no, acct number, bank account, =konto,
        konto nr, kontonummer, numero de compte, =cuenta, numero de cuenta, cuenta bancaria, =conto, card number,
        credit card, cc number, customer number, customer id, kundennummer, numero client, 银行卡, 卡号, 账号""",
    "PHONE_NUMBER": """phone, telephone, =tel, mobile, =cell, =fax, handy, telefon, telefono, cellulare, portable,
        movil, 电话, 手机""",
    "ZIP_CODE": """=zip, zipcode, zip code, postal code, postcode, post code, =plz, postleitzahl, code postal,
        codigo postal, =cap, 邮编""",
    "STREET_ADDRESS": """address, street, addr, adresse, anschrift, strasse, direccion, domicilio, indirizzo,
        endereco, 地址, 住址""",
    "LOCATION": """city, town, ville, stadt, wohnort, ciudad, localidad, citta, comune, birthplace, place of birth,
        lieu de naissance, geburtsort, luogo di nascita, 城市""",
    PERSON: """first name, firstname, fname, given name, givenname, last name, lastname, lname, surname,
        family name, familyname, middle name, maiden name, full name, fullname, prenom, vorname, nachname,
        familienname, apellido, apellidos, cognome, nom de famille, nombre completo, nome completo, 姓名, 名字""",
}
# Fields that name a person only when the value looks like a person's name ("name": "Finance" does not).
_GENERIC_PERSON = """name, nom, nome, nombre, contact, patient, paciente, paziente, customer, client, cliente, kunde,
    passenger, employee, tenant, landlord, owner, holder, cardholder, account holder, titular, recipient, sender,
    beneficiary, assignee, reporter, author, mitarbeiter, dipendente, empleado"""
# Words that make a field something else despite a phrase above: an IP address, an e-mail address,
# an OAuth client, a token count, a file or host name.
_NOT_PERSONAL = frozenset(
    """ip mac email mail e wallet remote bind listen server host hostname proxy web url uri callback return
    node memory base contract bitcoin eth type count counts limit max min expires expiry ttl length len
    url file filename path dir directory host service app application project bucket table column index
    queue topic job task step stage branch tag image container pod namespace cluster region zone model
    provider format template version placeholder hint field label display event""".split()
)
Phrase = tuple[str, tuple[str, ...]]  # (how it must appear: "whole" | "inside" | "words", its words)


def _phrase(text: str) -> Phrase:
    if text.startswith("="):
        return "whole", (text[1:],)
    if regex.match(r"\p{Han}", text):
        return "inside", (text,)
    return "words", tuple(text.split())


_PHRASES = [(label, [_phrase(p.strip()) for p in phrases.split(",")]) for label, phrases in _FIELDS.items()]
_GENERIC = [_phrase(p.strip()) for p in _GENERIC_PERSON.split(",")]


def field_words(name: str) -> tuple[str, ...]:
    """'patientFirstName' / 'first-name' / 'Prénom' -> (patient, first, name) / ... / (prenom,)."""
    name = regex.sub(r"(?<=\p{Ll})(?=\p{Lu})|(?<=\p{Lu})(?=\p{Lu}\p{Ll})", " ", name)
    folded = "".join(c for c in unicodedata.normalize("NFKD", name.casefold()) if not unicodedata.combining(c))
    return tuple(regex.findall(r"[\p{Han}]+|[a-z0-9]+", folded))


def _contains(words: tuple[str, ...], phrase: Phrase) -> bool:
    """The phrase as consecutive words of the field name; "=word" only as the whole name; Chinese
    phrases anywhere in a Chinese word ("患者姓名")."""
    how, want = phrase
    if how == "whole":
        return words == want
    if how == "inside":
        return any(want[0] in w for w in words)
    n = len(want)
    return any(words[i : i + n] == want for i in range(len(words) - n + 1))


@functools.lru_cache(maxsize=4096)
def label_for_field(name: str) -> tuple[str, bool] | None:
    """(label, generic) for a field name, or None. `generic`: the value must look like a person's name."""
    words = field_words(name)
    if not words or len(words) > 6 or any(w in _NOT_PERSONAL for w in words):
        return None
    for label, phrases in _PHRASES:
        if any(_contains(words, p) for p in phrases):
            return label, False
    if any(_contains(words, p) for p in _GENERIC):
        return PERSON, True
    return None


_NAME_WORD = regex.compile(r"\p{L}[\p{L}\p{M}'’.-]*")
_PLACEHOLDER = regex.compile(
    r"^(?:\$\{.*\}|\$\w+|<.*>|\{\{.*\}\}|%\(?\w+\)?s?|\*+|x+|null|none|nil|true|false|n/?a|-+|\?+|changeme)$", regex.I
)


def looks_like_a_name(value: str) -> bool:
    """1 to 4 words of letters, each capitalised (or two or more, all in lower case), one of them a
    known given or family name: "Valentina", "santiago herrera"; not "Finance", "general", "Q3 report"."""
    words = value.split()
    if not 1 <= len(words) <= 4 or not all(_NAME_WORD.fullmatch(w) for w in words):
        return False
    if not (all(w[0].isupper() for w in words) or (value.islower() and len(words) >= 2)):
        return False
    return any(is_name_word(w.strip(".")) for w in words)


_CODE = regex.compile(r"[()\[\]{}=`]|^(?:\$|self\.)|^[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+$")  # code, not a value
_PLACE_NAME = regex.compile(r"\p{L}[\p{L}\p{M} .'’-]*")


def _value_fits(label: str, generic: bool, value: str) -> bool:
    """The value's shape agrees with what its field says it is (and it is no code: `secret=secret,`)."""
    if not value or len(value) > 200 or _PLACEHOLDER.match(value) or _CODE.search(value):
        return False
    digits = sum(c.isdigit() for c in value)
    if label == PERSON:
        return looks_like_a_name(value) if generic else bool(regex.search(r"\p{L}", value)) and len(value) <= 80
    if label == "SECRET":  # generated or chosen to be hard: a digit or a symbol, no spaces, no path
        symbols = regex.search(r"[^\p{L}\p{N}_.-]", value) is not None
        return len(value) >= 6 and " " not in value and "/" not in value and (digits > 0 or symbols)
    if label in ("PHONE_NUMBER", "ACCOUNT_NUMBER"):
        return digits >= 5
    if label in ("DATE_OF_BIRTH", "ZIP_CODE"):
        return digits >= 2 and len(value) <= 40
    if label == "ID_NUMBER":
        return digits >= 3 and len(value) >= 4
    if label == "STREET_ADDRESS":
        return bool(regex.search(r"\p{L}", value)) and (" " in value or digits > 0) and "_" not in value
    if label == "LOCATION":
        return _PLACE_NAME.fullmatch(value) is not None and len(value) <= 60
    return False


# "key": "value" | 'key': 'value' | "key": 123 (JSON, Python, JS); a value may hold escaped quotes
_QUOTED_PAIR = regex.compile(
    r"""(?P<q>["'])(?P<key>[^"'\n]{1,60}?)(?P=q)\s*(?::|=>?)\s*
        (?:(?P<vq>["'])(?P<value>(?:\\.|(?!(?P=vq))[^\\\n])*)(?P=vq)|(?P<number>[+\d][\d .()/+-]{2,40}\d))""",
    regex.X,
)
# key=value (logs, .env, query strings) and key: value at a line's start (YAML, INI, mail headers)
_BARE_PAIR = regex.compile(
    r"""(?:(?<![\w.$-])(?P<key>[A-Za-z_][\w.-]{0,59})=(?P<vq>["'])?(?P<value>(?(vq)[^"'\n]*|[^\s&,;"'<>]+))(?(vq)(?P=vq))
        |(?m:^)[ \t]*(?:-[ \t]+)?(?P<key2>[\p{L}_][\p{L}\p{N}_ .-]{0,40}?)[ \t]*[:=][ \t]+(?P<vq2>["']?)
         (?P<value2>[^\n"']*?)(?P=vq2)[ \t]*$)""",
    regex.X | regex.M,
)
_INSERT = regex.compile(
    r"INSERT\s+INTO\s+[\w.`\"\[\]]+\s*\((?P<cols>[^)]*)\)\s*VALUES\s*(?P<rows>(?:\((?:'(?:''|[^'])*'|[^()'])*\)\s*,?\s*)+)",
    regex.I,
)
_ROW = regex.compile(r"\((?P<cells>(?:'(?:''|[^'])*'|[^()'])*)\)")


def _split_cells(line: str, sep: str, quote: str = '"') -> list[tuple[int, int]]:
    """Offsets of the cells of one delimited line; a quoted cell may hold the separator, and a doubled
    quote inside it ("" in CSV, '' in SQL) toggles twice, so it stays inside."""
    cells, start, quoted = [], 0, False
    for i, ch in enumerate(line):
        if ch == quote:
            quoted = not quoted
        elif ch == sep and not quoted:
            cells.append((start, i))
            start = i + 1
    cells.append((start, len(line)))
    return cells


def _trim(text: str, start: int, end: int, quotes: str = "\"' ") -> tuple[int, int]:
    while start < end and text[start] in quotes + "\t":
        start += 1
    while end > start and text[end - 1] in quotes + "\t":
        end -= 1
    return start, end


class FieldDetector:
    """Labels values by their field's name in objects, key=value lines, tables and SQL inserts."""

    name = "fields"

    def __init__(self, score: float) -> None:
        self._score = score

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        return [self._spans(text) for text in texts]

    def _spans(self, text: str) -> list[Span]:
        spans: list[Span] = []
        for key, start, end in self._pairs(text):
            found = label_for_field(key)
            if found is None:
                continue
            start, end = _trim(text, start, end)
            while end > start and (text[end - 1] in ",;" or (found[0] != PERSON and text[end - 1] == ".")):
                end -= 1  # a separator, or a sentence's end: "Fecha de nacimiento: 13/01/1960."
            if start < end and _value_fits(found[0], found[1], text[start:end]):
                spans.append(Span(start, end, found[0], self._score, self.name))
        return spans

    def _pairs(self, text: str) -> Iterator[tuple[str, int, int]]:
        """(field name, value start, value end) for every pair in the text, in any of the layouts."""
        for m in _QUOTED_PAIR.finditer(text):
            which = "value" if m.group("value") is not None else "number"
            yield m.group("key"), m.start(which), m.end(which)
        for m in _BARE_PAIR.finditer(text):
            if m.group("key") is not None:
                yield m.group("key"), m.start("value"), m.end("value")
            else:
                yield m.group("key2"), m.start("value2"), m.end("value2")
        yield from self._table_cells(text)
        for m in _INSERT.finditer(text):
            columns = [c.strip(" `\"[]\n") for c in m.group("cols").split(",")]
            for row in _ROW.finditer(m.group("rows")):
                base = m.start("rows") + row.start("cells")
                cells = _split_cells(row.group("cells"), ",", "'")
                if len(cells) == len(columns):
                    for column, (s, e) in zip(columns, cells, strict=True):
                        yield column, base + s, base + e

    def _table_cells(self, text: str) -> Iterator[tuple[str, int, int]]:
        """Cells of delimited tables: a header line of field names, then rows with as many cells."""
        lines, offset = [], 0
        for line in text.split("\n"):
            lines.append((offset, line))
            offset += len(line) + 1
        k = 0
        while k < len(lines):
            start, header = lines[k]
            sep = _separator(header)
            if sep is None:
                k += 1
                continue
            head = [_trim(header, s, e, "\"' |") for s, e in _split_cells(header.strip("\r"), sep)]
            names = [header[s:e] for s, e in head]
            if sep == "|":
                names = [n for n in names if n]
            if len(names) < 2 or not all(_is_field_name(n) for n in names):
                k += 1
                continue
            k += 1
            while k < len(lines):
                row_start, row = lines[k]
                if sep == "|" and regex.fullmatch(r"[\s:|+-]+", row):
                    k += 1  # the rule line of a Markdown table or of psql's output
                    continue
                cells = _split_cells(row.rstrip("\r"), sep)
                if sep == "|":
                    cells = [c for c in cells if row[c[0] : c[1]].strip()] if row.strip().startswith("|") else cells
                if len(cells) != len(names) or not row.strip():
                    break
                for name, (s, e) in zip(names, cells, strict=True):
                    yield name, row_start + s, row_start + e
                k += 1


def _separator(line: str) -> str | None:
    for sep in ("\t", ";", "|", ","):
        if line.count(sep) >= 1 and (sep != "|" or line.count(sep) >= 2):
            return sep
    return None


def _is_field_name(cell: str) -> bool:
    return bool(regex.fullmatch(r"[\p{L}_][\p{L}\p{N}_ .#/-]{0,39}", cell.strip())) and not cell.strip().isdigit()
