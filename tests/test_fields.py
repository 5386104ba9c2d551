"""Values in structured text, labelled by their field's name (rewriters/detectors/fields.py)."""

from __future__ import annotations

import pytest

from rewriters.detectors.fields import FieldDetector, field_words, label_for_field

DETECTOR = FieldDetector(0.85)


def found(text: str) -> list[tuple[str, str]]:
    return [(s.label, text[s.start : s.end]) for s in DETECTOR.detect([text])[0]]


def test_field_names_are_read_by_their_words_in_six_languages() -> None:
    assert field_words("patientFirstName") == ("patient", "first", "name")
    assert field_words("Prénom") == ("prenom",)
    assert label_for_field("last-name") == ("PERSON", False)
    assert label_for_field("cognome") == ("PERSON", False)
    assert label_for_field("Geburtsdatum") == ("DATE_OF_BIRTH", False)
    assert label_for_field("患者姓名") == ("PERSON", False)
    assert label_for_field("customer") == ("PERSON", True)  # generic: the value must look like a name
    assert label_for_field("cap") == ("ZIP_CODE", False)
    for other in ("rate_cap", "ip_address", "email_address", "max_tokens", "token_type", "file_name", "department"):
        assert label_for_field(other) is None, other


def test_tool_call_arguments_and_results_in_json() -> None:
    args = (
        '{"first_name": "Chidinma", "last_name": "Okonkwo-Bello", "phone": "+234 803 555 0192", '
        '"dob": "1990-07-21", "passport_no": "A10024871", "address": "14 Adeola Odeku St, Victoria Island"}'
    )
    assert found(args) == [
        ("PERSON", "Chidinma"),
        ("PERSON", "Okonkwo-Bello"),
        ("PHONE_NUMBER", "+234 803 555 0192"),
        ("DATE_OF_BIRTH", "1990-07-21"),
        ("ID_NUMBER", "A10024871"),
        ("STREET_ADDRESS", "14 Adeola Odeku St, Victoria Island"),
    ]
    nested = '{"kunde": {"vorname": "Emir", "nachname": "Öztürk", "iban": "DE89 3704 0044 0532 0130 00"}}'
    assert found(nested) == [
        ("PERSON", "Emir"),
        ("PERSON", "Öztürk"),
        ("ACCOUNT_NUMBER", "DE89 3704 0044 0532 0130 00"),
    ]
    python_dict = "{'paziente': 'Salvatore Esposito', 'codice_fiscale': 'SPSSVT62M14F839K', 'customer_id': 48213}"
    assert found(python_dict) == [
        ("PERSON", "Salvatore Esposito"),
        ("ID_NUMBER", "SPSSVT62M14F839K"),
        ("ACCOUNT_NUMBER", "48213"),
    ]


def test_generic_fields_take_only_values_that_look_like_names() -> None:
    text = '{"employee_id": "E-204871", "name": "Olusegun Adeyemi", "department": "Finance"}'
    assert found(text) == [("ID_NUMBER", "E-204871"), ("PERSON", "Olusegun Adeyemi")]
    assert found('{"name": "Finance", "owner": "platform-team", "client": "web"}') == []
    assert found("steps:\n  - name: build\n  - name: Checkout\nname: general\n") == []


def test_tables_with_a_header_row() -> None:
    csv = "email,first_name,last_name,plan\nlukasz@wp.pl,Łukasz,Zieliński,free\nhj@naver.com,Hye-jin,Park,pro"
    assert found(csv) == [
        ("PERSON", "Łukasz"),
        ("PERSON", "Zieliński"),
        ("PERSON", "Hye-jin"),
        ("PERSON", "Park"),
    ]
    semicolons = "matricola;cognome;nome;reparto\n004812;Ricci;Valentina;Logistica"
    assert found(semicolons) == [("ID_NUMBER", "004812"), ("PERSON", "Ricci"), ("PERSON", "Valentina")]
    markdown = "| Name | City | Phone |\n|---|---|---|\n| Ana Souza | Porto Alegre | +55 51 5555 0101 |"
    assert found(markdown) == [
        ("PERSON", "Ana Souza"),
        ("LOCATION", "Porto Alegre"),
        ("PHONE_NUMBER", "+55 51 5555 0101"),
    ]
    psql = " id | name | dob | city\n----+------+-----+-----\n 1042 | Marcus Delgado | 1987-02-14 | Tucson\n(1 row)"
    assert found(psql) == [("PERSON", "Marcus Delgado"), ("DATE_OF_BIRTH", "1987-02-14"), ("LOCATION", "Tucson")]
    quoted = 'name,address\n"Kenji Sato","2-1 Marunouchi, Chiyoda, Tokyo"'
    assert found(quoted) == [("PERSON", "Kenji Sato"), ("STREET_ADDRESS", "2-1 Marunouchi, Chiyoda, Tokyo")]
    # a prose line with a comma is no header
    assert found("Hello, world\nBest, Tom") == []


def test_sql_inserts() -> None:
    sql = (
        "INSERT INTO patients (first_name, last_name, dob, nhs_no) VALUES\n"
        "('Imran', 'Chaudhry', '1983-09-02', '943 476 5919'), ('Siobhán', 'O''Neill', '1979-12-30', '485 777 3456');"
    )
    assert found(sql) == [
        ("PERSON", "Imran"),
        ("PERSON", "Chaudhry"),
        ("DATE_OF_BIRTH", "1983-09-02"),
        ("ID_NUMBER", "943 476 5919"),
        ("PERSON", "Siobhán"),
        ("PERSON", "O''Neill"),
        ("DATE_OF_BIRTH", "1979-12-30"),
        ("ID_NUMBER", "485 777 3456"),
    ]


def test_key_value_lines_logs_and_config() -> None:
    log = "2024-03-02 11:02:54 INFO login ok user=jdoe password=Hunter2!x ip=10.2.3.4 phone=+4915123456789"
    assert found(log) == [("SECRET", "Hunter2!x"), ("PHONE_NUMBER", "+4915123456789")]
    form = "Nombre: Juan Pérez\nFecha de nacimiento: 03/04/1985.\nDirección: Calle Mayor 3, 2º B, 28013 Madrid"
    assert found(form) == [
        ("PERSON", "Juan Pérez"),
        ("DATE_OF_BIRTH", "03/04/1985"),
        ("STREET_ADDRESS", "Calle Mayor 3, 2º B, 28013 Madrid"),
    ]
    env = "DB_PASSWORD=${DB_PASSWORD}\nAPI_KEY=<your key here>\nSECRET_KEY=changeme\nSMTP_PASSWORD='Mot2passe!x'"
    assert found(env) == [("SECRET", "Mot2passe!x")]


@pytest.mark.parametrize(
    "code",
    [
        "secret: bytes,\npassword=None)\nhide_password=True\ncity=fake.city(),\n",
        "address=fake.address().replace('\\n', ', ')\nenclave_address=enclave_address,\n",
        "pad_token_id=self.tokenizer.pad_token_id\non_token=on_token\n",
        'export TOKEN=$(printf %s "$ADMIN_TOKEN" | sha256sum)\nexistingSecret: privgate-secret-key\n',
        '{"token_type": "Bearer", "max_tokens": 100, "ip_address": "10.0.0.1", "address": "0.0.0.0"}',
    ],
)
def test_code_is_not_a_record(code: str) -> None:
    assert found(code) == []


def test_a_token_with_dots_is_a_value_and_a_dotted_name_is_code() -> None:
    assert found("access_token=ya29.a0AfB_byC8xKq2LmN7vPzR4tW9hJ3dF (user x)") == [
        ("SECRET", "ya29.a0AfB_byC8xKq2LmN7vPzR4tW9hJ3dF")
    ]
    assert found("[api]\nchiave_segreta = 4f8a1c9e2b7d3f6a0e5c8b1d4f7a2e9c\n") == [
        ("SECRET", "4f8a1c9e2b7d3f6a0e5c8b1d4f7a2e9c")
    ]
    assert found("token=self.tokenizer.pad_token_id\nsecret_key=settings.secret_key") == []
