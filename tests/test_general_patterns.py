"""The shipped `general` policy's regex patterns on realistic multilingual text.

Positives: some pattern of the expected label must match exactly the expected substring (its
configured group). Negatives: ordinary text, logs and code that no pattern may match at all.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from policies import load_policy

POLICY_PATH = Path(__file__).resolve().parent.parent / "policies" / "domains" / "general.yaml"


@cache
def _patterns() -> list[tuple[str, str, re.Pattern[str], int]]:
    policy = load_policy(POLICY_PATH)
    return [
        (p.name, p.label, re.compile(p.regex, re.IGNORECASE if p.ignore_case else 0), p.group)
        for p in policy.detectors.patterns
    ]


def find(text: str) -> list[tuple[str, str]]:
    """Every (label, matched text) the policy's patterns find, taking each pattern's group."""
    found = []
    for _name, label, regex, group in _patterns():
        for match in regex.finditer(text):
            start, end = match.span(group)
            if start < end:
                found.append((label, text[start:end]))
    return found


PEM_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)
PEM_KEY_TRUNCATED = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"
)
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
ANTHROPIC_KEY = (
    "sk-ant-api03-djAWtGSU8po_799NksnRH9ucAUsdMlHUvTCQCyEZDz-TddJ8HyS5SUkCnD8zRA9a9SkpXz9w3QlY7Zkuvqdt7s8StqcbnAA"
)
GITHUB_PAT = "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"
SLACK_WEBHOOK = "https://hooks.slack.com/services/T024BE7LD/B01AB2CDE3F/aBcDeFgHiJkLmNoPqRsTuVwX"

# (text, label, the exact span expected)
POSITIVES: list[tuple[str, str, str]] = [
    # --- secrets: vendor shapes -------------------------------------------------------------
    (
        "OPENAI_API_KEY=sk-proj-Jr3J1TWDtkwtDDb_xHKas1VOqg6YYZYn9ZhyiA4uoRgnatmU\n",
        "SECRET",
        "sk-proj-Jr3J1TWDtkwtDDb_xHKas1VOqg6YYZYn9ZhyiA4uoRgnatmU",
    ),
    (f'{{"provider": "anthropic", "key": "{ANTHROPIC_KEY}"}}', "SECRET", ANTHROPIC_KEY),
    ("[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n", "SECRET", "AKIAIOSFODNN7EXAMPLE"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        "SECRET",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (
        "git clone https://x-access-token:ghp_gJTeKdNnFRIBXuDL7DxtpYlSXpfKtHF4vUCs@github.com/acme/api.git",
        "SECRET",
        "ghp_gJTeKdNnFRIBXuDL7DxtpYlSXpfKtHF4vUCs",
    ),
    (f"gh auth login --with-token <<< {GITHUB_PAT}", "SECRET", GITHUB_PAT),
    (
        "slack:\n  bot_token: xoxb-2048133617-1034567890123-AbCdEfGhIjKlMnOpQrStUvWx\n",
        "SECRET",
        "xoxb-2048133617-1034567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    ),
    (
        'const maps = new Loader({ apiKey: "AIzaPtYgjmUhBel31iEl2hpChYgCfrL1spNxnyV" });',
        "SECRET",
        "AIzaPtYgjmUhBel31iEl2hpChYgCfrL1spNxnyV",
    ),
    (
        'stripe.api_key = "sk_live_51HV7iB3m03nbqnsGpWLuqIA1id6Vw5D"',
        "SECRET",
        "sk_live_51HV7iB3m03nbqnsGpWLuqIA1id6Vw5D",
    ),
    (
        "HF_HUB_TOKEN: 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",
        "SECRET",
        "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",
    ),
    (f'curl -X POST -d \'{{"text":"deploy done"}}\' {SLACK_WEBHOOK}', "SECRET", SLACK_WEBHOOK),
    (f"2024-03-02 10:41:07 DEBUG auth: verified session={JWT} user=42", "SECRET", JWT),
    # --- secrets: headers and command lines -------------------------------------------------
    (
        'curl -s https://api.example.com/v2 -H "Authorization: Bearer 8f3a2b1c9d7e6f5a4b3c2d1e0f9a8b7c"',
        "SECRET",
        "8f3a2b1c9d7e6f5a4b3c2d1e0f9a8b7c",
    ),
    (
        "GET /admin HTTP/1.1\r\nHost: intranet\r\nAuthorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l\r\n",
        "SECRET",
        "YWxhZGRpbjpvcGVuc2VzYW1l",
    ),
    (
        "curl -H 'X-API-Key: 3f9a8b7c6d5e4f3a2b1c' https://api.example.com/v1/me",
        "SECRET",
        "3f9a8b7c6d5e4f3a2b1c",
    ),
    ("mysql -h db.internal -u root -pS3cretPass shop < dump.sql", "SECRET", "S3cretPass"),
    ("curl -u admin:Adm1nPass https://jenkins.internal/api/json", "SECRET", "Adm1nPass"),
    ("docker login -u bob --password s3cr3tPW registry.example.com", "SECRET", "s3cr3tPW"),
    ("sshpass -p 'S3cret!' ssh deploy@web01", "SECRET", "S3cret!"),
    ("Card 4111 1111 1111 1111, exp 12/27, CVV 737", "SECRET", "737"),
    # --- secrets: private keys --------------------------------------------------------------
    (f"Here is the deploy key:\n{PEM_KEY}\nplease check it", "PRIVATE_KEY", PEM_KEY),
    (f'{{"private_key": "{PEM_KEY_TRUNCATED}', "PRIVATE_KEY", PEM_KEY_TRUNCATED),
    # --- secrets: assignments in config, logs and code --------------------------------------
    ("database:\n  user: app\n  password: hunter2\n", "SECRET", "hunter2"),
    ('{"user": "bob", "password": "c0rrect horse battery"}', "SECRET", "c0rrect horse battery"),
    ("DB_HOST=localhost\nDB_PASSWORD=S3cr3t!\nDB_PORT=5432\n", "SECRET", "S3cr3t!"),
    ("JWT_SECRET=supersecretvalue\n", "SECRET", "supersecretvalue"),
    ("export REDIS_PASS='r3d1s-pa55'", "SECRET", "r3d1s-pa55"),
    ("DATABASE_URL=postgres://app_user:Tr0ub4dor@db.internal:5432/app", "SECRET", "Tr0ub4dor"),
    ("client = MongoClient('mongodb+srv://admin:pa55w0rd@cluster0.example.net/test')", "SECRET", "pa55w0rd"),
    ('level=error msg="login failed" user=alice password=Winter2024 ip=10.0.0.1', "SECRET", "Winter2024"),
    ("Server=sql01;Database=crm;User Id=sa;Pwd=Sql!2019x;", "SECRET", "Sql!2019x"),
    ('{"uid": "sa", "pwd": "abc123"}', "SECRET", "abc123"),
    ("cache: redis://:p4ssw0rd@cache:6379/0", "SECRET", "p4ssw0rd"),
    (
        "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSR==;",
        "SECRET",
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSR==",
    ),
    (
        'CLIENT_ID = "abc"\nclient_secret = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"',
        "SECRET",
        "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    ),
    (
        '{"token_type": "bearer", "refresh_token": "1//0gLk3xYz9-abcDEF123"}',
        "SECRET",
        "1//0gLk3xYz9-abcDEF123",
    ),
    ("my password is Tr0ub4dor&3 if you need it", "SECRET", "Tr0ub4dor&3"),
    ("Identifiant : jdupont\nMot de passe : Soleil2024!", "SECRET", "Soleil2024!"),
    ("Benutzer: mmuster, Passwort: Geheim123", "SECRET", "Geheim123"),
    ("usuario=pgarcia contraseña=Hola1234", "SECRET", "Hola1234"),
    ("Per entrare, la password è Ciao2024! poi cambiala.", "SECRET", "Ciao2024!"),
    ("数据库密码：abc123456", "SECRET", "abc123456"),
    ("我的密码是Qwerty123，请保密。", "SECRET", "Qwerty123"),
    # --- dates of birth ---------------------------------------------------------------------
    ("Pt: J. Smith, DOB: 03/05/1985, seen 2024-01-15 for chest pain.", "DATE_OF_BIRTH", "03/05/1985"),
    ("The patient was born on March 5, 1985 in Boston.", "DATE_OF_BIRTH", "March 5, 1985"),
    ('{"name": "Jane Roe", "date_of_birth": "1985-05-03"}', "DATE_OF_BIRTH", "1985-05-03"),
    ("D.O.B. 5th March 1985", "DATE_OF_BIRTH", "5th March 1985"),
    ("Mme Martin, née le 3 mars 1985 à Lyon.", "DATE_OF_BIRTH", "3 mars 1985"),
    ("Date de naissance : 03/05/1985", "DATE_OF_BIRTH", "03/05/1985"),
    ("Né(e) le : 12/07/1990", "DATE_OF_BIRTH", "12/07/1990"),
    ("Max Mustermann, geboren am 3. März 1985 in Köln", "DATE_OF_BIRTH", "3. März 1985"),
    ("Geburtsdatum: 03.05.1985", "DATE_OF_BIRTH", "03.05.1985"),
    ("Fecha de nacimiento: 3 de mayo de 1985", "DATE_OF_BIRTH", "3 de mayo de 1985"),
    ("Paciente nacida en Sevilla el 12/07/1990.", "DATE_OF_BIRTH", "12/07/1990"),
    ("Mario Rossi, nato a Roma il 3 maggio 1985", "DATE_OF_BIRTH", "3 maggio 1985"),
    ("Data di nascita: 03/05/1985", "DATE_OF_BIRTH", "03/05/1985"),
    ("患者张伟，出生日期：1985年5月3日，主诉头痛。", "DATE_OF_BIRTH", "1985年5月3日"),
    ("生日：1990-01-01", "DATE_OF_BIRTH", "1990-01-01"),
    # --- medical record numbers -------------------------------------------------------------
    ("MRN: 00482913", "MEDICAL_RECORD_NUMBER", "00482913"),
    ("ED triage note MRN#12345678 allergy: penicillin", "MEDICAL_RECORD_NUMBER", "12345678"),
    ("Medical record number 4521-889-01 was merged.", "MEDICAL_RECORD_NUMBER", "4521-889-01"),
    ('{"patient_id": "PT-0098123", "ward": "B"}', "MEDICAL_RECORD_NUMBER", "PT-0098123"),
    ("Numéro de dossier patient : 2023-004512", "MEDICAL_RECORD_NUMBER", "2023-004512"),
    ("Patientennummer: 7781234", "MEDICAL_RECORD_NUMBER", "7781234"),
    ("Revisar el número de historia clínica 456789 antes del alta.", "MEDICAL_RECORD_NUMBER", "456789"),
    ("Allegare la cartella clinica n. 12345/2023", "MEDICAL_RECORD_NUMBER", "12345/2023"),
    ("病历号：ZY20230915001", "MEDICAL_RECORD_NUMBER", "ZY20230915001"),
    ("NHS number 943 476 5919", "UK_NHS", "943 476 5919"),
    # --- account and other record numbers ---------------------------------------------------
    ("Account number: 12345678, sort code 20-00-00", "ACCOUNT_NUMBER", "12345678"),
    ("Refund to acct #4490-2231-77 today", "ACCOUNT_NUMBER", "4490-2231-77"),
    ("customer ID C-1002345 opened a ticket", "ACCOUNT_NUMBER", "C-1002345"),
    ("Your policy number is POL-2024-778812.", "ACCOUNT_NUMBER", "POL-2024-778812"),
    ("Numéro de compte : 00012345678", "ACCOUNT_NUMBER", "00012345678"),
    ("Kontonummer 1234567890 bei der Sparkasse", "ACCOUNT_NUMBER", "1234567890"),
    ("Kundennummer: KD-1002345", "ACCOUNT_NUMBER", "KD-1002345"),
    ("número de cuenta: 0049 1500 05 1234567890", "ACCOUNT_NUMBER", "0049 1500 05 1234567890"),
    ("numero di conto 000123456789", "ACCOUNT_NUMBER", "000123456789"),
    ("银行账号：6222021234567890123", "ACCOUNT_NUMBER", "6222021234567890123"),
    ("客户编号：C20230001", "ACCOUNT_NUMBER", "C20230001"),
    ("Re: case number 2024-CV-01234", "ID_NUMBER", "2024-CV-01234"),
    ("Versichertennummer: A123456789", "ID_NUMBER", "A123456789"),
    ("Número de expediente 2023/000456", "ID_NUMBER", "2023/000456"),
    ("passport number: 12AB34567", "ID_NUMBER", "12AB34567"),
    ("护照号码：E12345678", "ID_NUMBER", "E12345678"),
    # --- national IDs -----------------------------------------------------------------------
    ("N° sécu 1 85 05 78 006 084 36", "NATIONAL_ID", "1 85 05 78 006 084 36"),
    ("NIR : 185057800608436", "NATIONAL_ID", "185057800608436"),
    ("Steuer-ID: 12 345 678 901", "NATIONAL_ID", "12 345 678 901"),
    ("Personalausweisnummer: L01X00T47", "NATIONAL_ID", "L01X00T47"),
    ("DNI 12345678Z", "NATIONAL_ID", "12345678Z"),
    ("NIE: X1234567L", "NATIONAL_ID", "X1234567L"),
    ("codice fiscale RSSMRA85T10A562S", "NATIONAL_ID", "RSSMRA85T10A562S"),
    ("身份证号：11010519491231002X", "NATIONAL_ID", "11010519491231002X"),
    ("NI number: AB 12 34 56 C", "NATIONAL_ID", "AB 12 34 56 C"),
    ("Gentile sig. Conti, con la presente", "PERSON", "Conti"),
    ("What is the limit for card 501864667909?", "CREDIT_CARD", "501864667909"),
    ("I have worked at Hill Inc. since 2019", "ORGANIZATION", "Hill Inc."),
    ("Alvir spent a year at Weeks-Rivas as the assistant", "ORGANIZATION", "Weeks-Rivas"),
    ("Ich arbeite bei Kessler Logistik seit 2019.", "ORGANIZATION", "Kessler Logistik"),
    ("The address of Compliance And Risks is 9554 62 Rue Gafsa", "ORGANIZATION", "Compliance And Risks"),
    ("Die Rechnung von Kessler Logistik GmbH ist fällig.", "ORGANIZATION", "Kessler Logistik GmbH"),
    ("Contratto con Rossi S.r.l. firmato", "ORGANIZATION", "Rossi S.r.l."),
    ("My credit card 4131 0342 8245 8809 939 has been lost", "CREDIT_CARD", "4131 0342 8245 8809 939"),
    ("Ma carte bancaire : 4970 1012 3456 7890", "CREDIT_CARD", "4970 1012 3456 7890"),
    ("al mio commercialista, il dott. Moretti, per chiedere", "PERSON", "Moretti"),
    ('"POST /reset-password?email=camille.dubois%40free.fr&token=x"', "EMAIL_ADDRESS", "camille.dubois%40free.fr"),
    ("Pat. Reto Brunner, AHV-Nr. 756.1234.5678.97, 34 J.", "NATIONAL_ID", "756.1234.5678.97"),
    ('"cpf": "482.193.776-05"', "NATIONAL_ID", "482.193.776-05"),
    ("it asks for my PESEL too, which is 90010112345.", "NATIONAL_ID", "90010112345"),
    ("Patient : Gabriel Tremblay, NAM TREG 8503 1214, né le", "NATIONAL_ID", "TREG 8503 1214"),
    ("born in Guadalajara, passport G18273645 (expired)", "ID_NUMBER", "G18273645"),
    ("a copy of your ID card (no. 482917AB) and", "ID_NUMBER", "482917AB"),
    ("my booking reference is 7HX92K4 and your staff", "ID_NUMBER", "7HX92K4"),
    ("Probate No. 2024-EST-00915.", "ID_NUMBER", "2024-EST-00915"),
    ("remboursement de 89 €, dossier n° SAV-2024-11873. Personne", "ID_NUMBER", "SAV-2024-11873"),
    ("Affaire n° RG 23/04512 - Mme Fontaine", "ID_NUMBER", "23/04512"),
    ("Siniestro nº SIN-2024-00781. Asegurado:", "ID_NUMBER", "SIN-2024-00781"),
    ("il suo permesso di soggiorno (n. I12345678) è pronto", "ID_NUMBER", "I12345678"),
    ("身分證字號 A223456789，住台北市", "ID_NUMBER", "A223456789"),
    ("vers mon compte 00012345678 n'est jamais arrivé", "ACCOUNT_NUMBER", "00012345678"),
    ("Client depuis 2015. N° client 7845120.", "ACCOUNT_NUMBER", "7845120"),
    ("Il mio codice cliente è 00573829.", "ACCOUNT_NUMBER", "00573829"),
    ("支付失败，银行卡 6222 0202 0002 1234 567 余额不足", "ACCOUNT_NUMBER", "6222 0202 0002 1234 567"),
    # --- phone numbers ----------------------------------------------------------------------
    ("Appelez-moi au +33 6 12 34 56 78 demain.", "PHONE_NUMBER", "+33 6 12 34 56 78"),
    ("Mon portable : 06 12 34 56 78", "PHONE_NUMBER", "06 12 34 56 78"),
    ("Tel. +49 30 1234567", "PHONE_NUMBER", "+49 30 1234567"),
    ("Standard : 01.42.68.53.00", "PHONE_NUMBER", "01.42.68.53.00"),
    ("Zentrale (030) 12345678", "PHONE_NUMBER", "(030) 12345678"),
    ("London office: +44 20 7946 0958", "PHONE_NUMBER", "+44 20 7946 0958"),
    ("Bitte rufen Sie mich unter 0171 2345678 an.", "PHONE_NUMBER", "0171 2345678"),
    ("Llámame al +34 612 345 678", "PHONE_NUMBER", "+34 612 345 678"),
    ("mi móvil es 612 34 56 78", "PHONE_NUMBER", "612 34 56 78"),
    ("Chiamami al +39 333 123 4567", "PHONE_NUMBER", "+39 333 123 4567"),
    ("Il mio numero è 333 1234567", "PHONE_NUMBER", "333 1234567"),
    ("联系电话：13812345678", "PHONE_NUMBER", "13812345678"),
    ("请打13912345678联系我", "PHONE_NUMBER", "13912345678"),
    ("call +86 138 0013 8000 after 6pm", "PHONE_NUMBER", "+86 138 0013 8000"),
    ('{"phone": "+1 (415) 555-0100"}', "PHONE_NUMBER", "+1 (415) 555-0100"),
    ("Teléfono: 912 345 678", "PHONE_NUMBER", "912 345 678"),
    # --- IBANs ------------------------------------------------------------------------------
    ("IBAN : FR76 3000 6000 0112 3456 7890 189", "IBAN_CODE", "FR76 3000 6000 0112 3456 7890 189"),
    ("Bitte überweisen an DE89 3704 0044 0532 0130 00.", "IBAN_CODE", "DE89 3704 0044 0532 0130 00"),
    ("IBAN IT60 X054 2811 1010 0000 0123 456", "IBAN_CODE", "IT60 X054 2811 1010 0000 0123 456"),
    ('"iban": "ES9121000418450200051332"', "IBAN_CODE", "ES9121000418450200051332"),
    ("Payee IBAN GB29 NWBK 6016 1331 9268 19", "IBAN_CODE", "GB29 NWBK 6016 1331 9268 19"),
    # --- street addresses -------------------------------------------------------------------
    (
        "I live at 123 Main Street, Springfield, IL 62704 with my wife.",
        "STREET_ADDRESS",
        "123 Main Street, Springfield, IL 62704",
    ),
    ("Ship it to 221B Baker Street, London NW1 6XE", "STREET_ADDRESS", "221B Baker Street, London NW1 6XE"),
    (
        "Mail: 1600 Pennsylvania Avenue NW, Washington, DC 20500",
        "STREET_ADDRESS",
        "1600 Pennsylvania Avenue NW, Washington, DC 20500",
    ),
    ("Livraison au 42 rue de la Paix, 75002 Paris", "STREET_ADDRESS", "42 rue de la Paix, 75002 Paris"),
    ("Adresse: Hauptstraße 5, 10115 Berlin", "STREET_ADDRESS", "Hauptstraße 5, 10115 Berlin"),
    ("Lieferung an Musterstr. 12a bitte", "STREET_ADDRESS", "Musterstr. 12a"),
    ("Vivo en la Calle Mayor 10, 3º B", "STREET_ADDRESS", "Calle Mayor 10"),
    ("Dirección: C/ Gran Vía 28, 28013 Madrid", "STREET_ADDRESS", "C/ Gran Vía 28, 28013 Madrid"),
    ("Oficina en Paseo de la Castellana 259", "STREET_ADDRESS", "Paseo de la Castellana 259"),
    ("Abito in via Garibaldi 7 da dieci anni", "STREET_ADDRESS", "via Garibaldi 7"),
    ("Sede: Corso Vittorio Emanuele II, 21", "STREET_ADDRESS", "Corso Vittorio Emanuele II, 21"),
    (
        "Ufficio: Piazza del Duomo 1, 20121 Milano (MI)",
        "STREET_ADDRESS",
        "Piazza del Duomo 1, 20121 Milano (MI)",
    ),
    ("我住在北京市朝阳区建国路88号。", "STREET_ADDRESS", "北京市朝阳区建国路88号"),
    ("公司地址：上海市浦东新区世纪大道100号", "STREET_ADDRESS", "上海市浦东新区世纪大道100号"),
    (
        "收货地址：广东省深圳市南山区科技园路1号3栋501室",
        "STREET_ADDRESS",
        "广东省深圳市南山区科技园路1号3栋501室",
    ),
    # --- people named by a title or introducing themselves ------------------------------------
    ("Please forward this to Dr. Sigrid Halvorsen today.", "PERSON", "Sigrid Halvorsen"),
    ("Sehr geehrte Frau Özdemir-Schäfer, anbei die Rechnung.", "PERSON", "Özdemir-Schäfer"),
    ("Rendez-vous avec Mme Nguyễn Thị Lan lundi.", "PERSON", "Nguyễn Thị Lan"),
    ("Gentile signora Esposito, la fattura è allegata.", "PERSON", "Esposito"),
    ("Atentamente, Sra. María José de la Fuente", "PERSON", "María José"),
    ("Hi all, my name is Oluwaseun Adebayo and I lead the team.", "PERSON", "Oluwaseun Adebayo"),
    ("Hi Todd,\nthe nightly deploy failed again.", "PERSON", "Todd"),
    ("please block my credit card asap ? my name is lena andersson.", "PERSON", "lena andersson"),
    ("Christine Hertzog but everyone calls me Christine", "PERSON", "Christine"),
    ("She was born on 7/30/1964. Her maiden name is Sandgreen.", "PERSON", "Sandgreen"),
    ("I'd like to join accounts with ms. Quinzia Ferrante", "PERSON", "Quinzia Ferrante"),
    ("My zip code is 76400", "ZIP_CODE", "76400"),
    ("Can someone call me on 450 0840? I have some questions", "PHONE_NUMBER", "450 0840"),
    ("Personal Info:\nPhone:\n780 6326 ext", "PHONE_NUMBER", "780 6326"),
    ("Liebe Jana, danke für die Unterlagen.", "PERSON", "Jana"),
    ("Gracias Iñaki! Lo reviso mañana.", "PERSON", "Iñaki"),
    ("I would like to remove my kid Lukas from the will.", "PERSON", "Lukas"),
    ("Ma fille Chloé a de la fièvre depuis hier.", "PERSON", "Chloé"),
    ("Meine Kollegin Jana Nováková übernimmt den Fall.", "PERSON", "Jana Nováková"),
    ("Bonjour, je m'appelle Amélie Dubois.", "PERSON", "Amélie Dubois"),
    ("Hallo, ich heiße Jürgen Weiß.", "PERSON", "Jürgen Weiß"),
    ("Hola, me llamo Begoña Etxeberria y necesito ayuda.", "PERSON", "Begoña Etxeberria"),
    ("Buongiorno, mi chiamo Giulia Rossi.", "PERSON", "Giulia Rossi"),
    ("你好，我叫陈小明，今年三十岁。", "PERSON", "陈小明"),
    ("Nombre: juan\nApellidos: García López\nNHC: 123", "PERSON", "García López"),
    ("NASS: 89 34573646 98\nNHC: 4521987", "ID_NUMBER", "89 34573646 98"),
    ("Dra. Begoña Iza NºCol: 28 28 49712", "ID_NUMBER", "28 28 49712"),
    ("Episodio: 34257897", "ID_NUMBER", "34257897"),
    ("Nombre: juan\nApellidos: García López", "PERSON", "juan"),
    ("Patient: Olumide Bakare-Jones\nDOB: 1980-01-02", "PERSON", "Olumide Bakare-Jones"),
    ("Last name: o'brien\nFirst name: siobhan", "PERSON", "o'brien"),
    ("Nachname: Weiß\nVorname: Jürgen", "PERSON", "Weiß"),
    ("患者姓名：王芳，女，35岁", "PERSON", "王芳"),
    ("Domicilio: Calle Mayor 10\nCP: 28034 Madrid", "ZIP_CODE", "28034"),
    ("Anschrift: Hauptstraße 5, PLZ 10115 Berlin", "ZIP_CODE", "10115"),
    ("ship to zip code: 94107-1234", "ZIP_CODE", "94107-1234"),
]

# Text that no pattern may match at all.
NEGATIVES: list[str] = [
    # references that identify no one: issues, versions, years, a file's number
    "Fixed in PR #1234 (see issue #456); bump to version 3.10.2. Le dossier 2024 de la commission.",
    "The passport office opens in 2025; the ID card reader is model 4410. Booking opens at 09:00.",
    "The card game had 2 players; cc 3 people; gift card worth 50 EUR, order 123456789.",
    "This Ltd edition print; Inc. magazine; the AG said; we deploy Docker and Python.",
    "I work at home on Mondays; we work for the common good; the address of the server is 10.0.0.2.",
    # greetings to no one in particular
    "Hello, World! This is my first program.",
    "my name is not important here, call me later. My name is the least of it.",
    "Hi all, thanks everyone for joining. Dear Sir or Madam,",
    "Dear Customer,\nDear colleagues,\nLiebe Kunden,\nGentile cliente,",
    # versions, builds, hashes, ids
    "Upgraded numpy from 1.26.4 to 2.0.1 and Python to 3.11.9.",
    "docker run -p 8080:80 nginx:1.25.3 --name web",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8\nAuthor: CI Bot\n\n    Merge abc1234 into main",
    "Pulled sha256:9f86d081884c7d659a2feaf0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    'ETag: "33a64df551425fcc55e4d42a148795d9f25f89d4"',
    # log lines and timestamps
    "2024-01-15T10:23:45.123Z INFO request_id=550e8400-e29b-41d4-a716-446655440000 status=200 latency_ms=512",
    "[2024-03-02 10:41:07,123] WARN pid=12345 worker=3 retrying in 1500 ms",
    "Listening on 0.0.0.0:8080 (pid 12345), uptime 1700000000123 ms",
    "at com.example.billing.Invoice.total(Invoice.java:123)",
    "HTTP/1.1 200 OK\r\nContent-Length: 3495\r\nX-Request-Id: 7f3c9a2e-1b4d-4e8f-9a6b-2c5d8e1f0a3b",
    # tokens and passwords without values
    "token count: 512, max_tokens: 4096, MAX_TOKENS=4096, TOKEN_LIMIT=8192",
    "Please reset your password before Monday.",
    "Password: must be at least 12 characters long",
    "The password is incorrect, try again.",
    'db:\n  password: ${DB_PASSWORD}\n  api_key: "<your-api-key>"',
    '{"password": null, "token": "***"}',
    "Use Bearer authentication and set the API key in the settings page.",
    "PWD=/home/alice/project\nOLDPWD=/home/alice\nbypass: true\npassthrough: false",
    "sk-learn is a common typo for scikit-learn",
    # code and tool output around credentials, without a credential
    "password = request.form['password']\nif not check(password := getpass()): raise",
    'self.key_password = key_password\nconfig.password = os.environ["DB_PASSWORD"]',
    "  password: req.body.password,\n  password_hash: str,\n  remember: bool",
    "ERROR 1045 (28000): Access denied for user 'root'@'localhost' (using password: YES)",
    "Invalid password: user=alice attempt=3",
    "Use the --token flag; see Pass :meth:`peek` and password: bool",
    'ENV_API_KEY = "ANTHROPIC_API_KEY"\nSQL_COPT_SS_ACCESS_TOKEN = 1256',
    "client_id=1234567890-abc.apps.googleusercontent.com file_id: 12345, test case #123 failed",
    'access_token = response.json()["access_token"]; secret = base64.b64decode(raw)',
    "git clone https://github.com/acme/api.git && cd api",
    # prices, amounts, quantities
    "The price is $1,299.99 (or €1.299,00 incl. VAT), 3 items left.",
    "Revenue grew +12.5% to 1 234 567 EUR in Q3, +1 234 567 890 impressions.",
    "Disk usage: 17179869184 bytes, 3 files",
    "SELECT * FROM users WHERE id = 42 LIMIT 100",
    # ordinary sentences with numbers, one per language
    "We added 3 Main Features and moved 5 minutes down the road.",
    "She was born in 1985 and moved to Paris in 2010.",
    "Le rendez-vous est prévu le 12 mars 2024 à 14h30, salle 3, prix 1 299,00 € TTC.",
    "Entrez votre mot de passe pour continuer.",
    "Im Jahr 2024 hatten wir 1.234.567 Besucher, Version 2.3.1 kam am 15.03.2024.",
    "Geben Sie Ihr Passwort ein.",
    "Am Platz 3 stand ein Baum.",
    "En 2023 vendimos 612 345 678 unidades en 45 países.",
    "Introduce tu contraseña para continuar.",
    "Il corso di Python 3 inizia il 15 settembre 2024 alle 9, install via pip 23.",
    "我们在2023年卖出了1500台设备，价格是2999元。请输入密码。",
    "订单号：20240115 已发货，共 3 件。",
    "my name is not important here",
    "Dr. who cares, the build is green",
    "name: build-and-test\non: [push]",
    "steps:\n  - name: Checkout Code\n    uses: actions/checkout@v4",
    "Patient: stable overnight, no complaints",
    "version: 3.1.4, cap: 2048 tokens",
]


@pytest.mark.parametrize(("text", "label", "expected"), POSITIVES, ids=[f"{p[1]}:{p[2][:24]}" for p in POSITIVES])
def test_positive_example_is_found(text: str, label: str, expected: str) -> None:
    found = find(text)
    assert (label, expected) in found, f"wanted {(label, expected)}, found {found}"


@pytest.mark.parametrize("text", NEGATIVES, ids=[n[:40] for n in NEGATIVES])
def test_negative_example_is_left_alone(text: str) -> None:
    assert find(text) == []


def test_table_sizes_and_languages() -> None:
    assert len(POSITIVES) >= 60
    assert len(NEGATIVES) >= 30
    assert {label for _, label, _ in POSITIVES} == {label for _, label, _, _ in _patterns()}


def test_every_pattern_fires_on_some_positive() -> None:
    idle = [name for name, _, regex, _ in _patterns() if not any(regex.search(text) for text, _, _ in POSITIVES)]
    assert idle == []


def test_policy_shape() -> None:
    policy = load_policy(POLICY_PATH)
    assert policy.name == "general"
    assert policy.protect and not policy.passthrough
    assert policy.detectors.presidio.enabled
    assert policy.action_for("DATE_TIME").value == "allow"
    assert policy.action_for("DATE_OF_BIRTH").value == "pseudonymize"
    assert policy.action_for("SECRET").value == "mask"
    assert policy.detectors.presidio.thresholds["DATE_TIME"] > policy.detectors.presidio.score_threshold
    names = [p.name for p in policy.detectors.patterns]
    assert len(names) == len(set(names))

