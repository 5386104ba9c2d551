"""Unlabelled English text for distillation when the user gives none: varied sentences from Faker's providers.

Distillation only needs inputs that exercise the encoder the way real requests do (names, places, numbers,
ordinary prose); the teacher's embeddings are the labels.
"""

from __future__ import annotations

from faker import Faker

__all__ = ["default_corpus", "read_corpus"]

_TEMPLATES = (
    "{name} works as a {job} at {company} in {city}.",
    "Please send the invoice for {bs} to {email} before {date}.",
    "{company} announced that it will {bs} next quarter.",
    "The meeting with {name} about {catch} moved to {date}.",
    "My address is {address}; call me at {phone}.",
    "{name} was admitted on {date} and discharged two days later.",
    "Can you summarise the contract between {company} and {company2}?",
    "How do I reset the password for the account {email}?",
    "The {job} from {city} asked whether the report on {catch} is ready.",
)


def default_corpus(n: int, seed: int = 0) -> list[str]:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    texts: list[str] = []
    for i in range(n):
        if i % 3 == 0:
            texts.append(fake.sentence(nb_words=6 + i % 14))
        else:
            template = _TEMPLATES[i % len(_TEMPLATES)]
            texts.append(
                template.format(
                    name=fake.name(),
                    job=fake.job(),
                    company=fake.company(),
                    company2=fake.company(),
                    city=fake.city(),
                    bs=fake.bs(),
                    email=fake.email(),
                    date=fake.date(),
                    catch=fake.catch_phrase().lower(),
                    address=fake.address().replace("\n", ", "),
                    phone=fake.phone_number(),
                )
            )
    return texts


def read_corpus(path: str) -> list[str]:
    """One text per non-empty line."""
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]
