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
    # short questions and requests, the commonest shape of a real query (the templates above are all long)
    "How do I {verb} my {noun}?",
    "What is the best way to {verb} a {adjective} {noun}?",
    "Can you {verb} the {noun} before {day}?",
    "Why did the {noun} {verb} so {adverb}?",
    "When does the {noun} in {city} open?",
    "I want to {verb} my {noun}.",
    "Is it possible to {verb} the {noun} without a {noun2}?",
    "The {adjective} {noun} is not working.",
    "Where can I find a {adjective} {noun} near {city}?",
)


def default_corpus(n: int, seed: int = 0) -> list[str]:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    texts: list[str] = []
    for i in range(n):
        if i % 3 == 0:
            texts.append(fake.sentence(nb_words=6 + i % 14))
        else:
            template = _TEMPLATES[(i - i // 3 - 1) % len(_TEMPLATES)]  # every template in turn
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
                    verb=fake.word(part_of_speech="verb"),
                    noun=fake.word(part_of_speech="noun"),
                    noun2=fake.word(part_of_speech="noun"),
                    adjective=fake.word(part_of_speech="adjective"),
                    adverb=fake.word(part_of_speech="adverb"),
                    day=fake.day_of_week(),
                )
            )
    return texts


def read_corpus(path: str) -> list[str]:
    """One text per non-empty line."""
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]
