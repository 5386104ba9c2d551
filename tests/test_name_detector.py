"""Names no NER model here reads, found by a leading given name (or a leading Vietnamese family name)."""

from __future__ import annotations

from rewriters.detectors.names import NameDetector


def names_in(text: str) -> list[str]:
    return [text[s.start : s.end] for s in NameDetector(0.6).detect([text])[0]]


def test_names_from_other_cultures_in_languages_without_ner() -> None:
    assert names_in("Schreibe an Begoña Etxeberria, E-Mail folgt.") == ["Begoña Etxeberria"]
    assert names_in("Send to Nguyễn Thị Minh Khai and Oluwaseun Adebayo") == ["Nguyễn Thị Minh Khai"]
    assert names_in("cc Søren Kierkegaard-Østergaard please") == ["Søren Kierkegaard-Østergaard"]


def test_capitalised_runs_not_led_by_a_name_are_left_alone() -> None:
    assert names_in("We deploy on GitHub Actions and Microsoft Azure. The Board Meeting is on Monday.") == []
    assert names_in("See Begoña; the begoña etxeberria account") == ["begoña etxeberria"]  # one word alone: not


def test_a_name_typed_in_lower_case() -> None:
    """A given name then a word that is no everyday word, or a title before a word: a person in any case."""
    assert names_in("eva kleist lives at 255 hersnapvej") == ["eva kleist"]
    assert names_in("olga krylova's killers, then leidy t muris") == ["olga krylova", "leidy t muris"]
    assert names_in("mr. elliott flew on friday") == ["elliott"]
    # everyday words, chat shorthand and tools are no family names
    for text in ("the rose garden", "ask maria tmrw", "install maria db", "pip install fastapi uvicorn", "dr. who"):
        assert all(" " not in n for n in names_in(text)), text


def test_a_name_shaped_by_its_middle_initial_or_its_place_in_a_list() -> None:
    assert names_in("Have you been to a Ravil G Yefimov concert?") == ["Ravil G Yefimov"]
    assert names_in("Plan B Consulting and World War I Memorial") == []
    assert names_in("they had 6: leonti, terrence, pamela, donna, andrea and brian.") == [
        "leonti", "terrence", "pamela", "donna", "andrea", "brian"
    ]
    for text in ("april, may and june", "Paris, Rome and Sydney", "red, green and blue", "numpy, pandas and scipy"):
        assert names_in(text) == [], text


def test_one_given_name_where_its_place_says_it_is_a_person() -> None:
    # the subject of a verb only people do, even when the name is also an everyday word
    assert names_in("Sofie lives on 69 Av Sidi Lakhdar.\nSandra lives on Hansinegata 120") == ["Sofie", "Sandra"]
    assert names_in("Darren is a very sympathetic person. Begoña wrote back.") == ["Darren", "Begoña"]
    # the person addressed, or a line's speaker, when the name is no everyday word
    assert names_in("Danial, can I please speak to you?") == ["Danial"]
    assert names_in("Halldór: What a wife.\nDanial: Remember me?") == ["Halldór", "Danial"]
    # in a transcript whose speakers are given names, every speaker is a person, known name or not
    assert names_in("Leverett: What a wife.\nDanielle: Remember me?\nJonathan: yes") == [
        "Leverett", "Danielle", "Jonathan"
    ]
    assert names_in("From: a@b.c\nTo: x@y.z\nSubject: Hello\nUser: hi\nAssistant: hello") == []
    # a heading, a config key or a function word is no speaker
    assert names_in("Max: 10 retries\nNote: none\nError: failed\nWill said so.\nPython is from 1991.") == []


def test_one_given_name_in_any_case_where_the_sentence_says_it_is_a_person() -> None:
    # the one a message is for, in six languages, typed in lower case as people do in chat
    assert names_in("can u email priya about the standup?") == ["priya"]
    assert names_in("yo tell kenji and haruka the table is booked") == ["kenji", "haruka"]
    assert names_in("dile a valentina que ya salí") == ["valentina"]
    assert names_in("dì a giulia che stasera non ce la faccio") == ["giulia"]
    assert names_in("sag jonas bitte, dass ich später komme") == ["jonas"]
    for text, name in (("avisa a lucía que llego tarde", "lucía"), ("appelle camille demain", "camille"),
                       ("chiama marco stasera", "marco"), ("call sophie back", "sophie")):
        assert names_in(text) == [name], text
    assert names_in("call back later; chiama il medico; appelle le service; ruf mich an") == []
    # the subject of a people verb, anywhere in the sentence
    assert names_in("lol yeah jessica said the same thing") == ["jessica"]
    assert names_in("Am Montag: Sophie hat gesagt, sie kommt") == ["Sophie"]
    # a speaker in quoted dialogue, a person's relatives, and a family name that follows the given name
    assert names_in('Koppány: "Who are you?"\nElizabeth:"I\'m Amanda\'s daughter".') == ["Elizabeth", "Amanda"]
    assert names_in('mika: "who are you?"') == ["mika"]
    assert names_in("please follow up with patricia desrosiers next month") == ["patricia desrosiers"]
    assert names_in("Mehrudin shouted at Todd in the hall") == ["Todd"]
    # the name that signs a message, even an everyday word
    assert names_in("Please use the new form.\n\nBest,\nJoy") == ["Joy"]
    assert names_in("Bis dann.\n\nLG\nStefan") == ["Stefan"]
    assert names_in("Thanks,\nThe Team\n\nCheers,\nSupport") == []
    # a capitalised name inside a sentence, when it is no everyday word
    assert names_in("My tenant Chukwuemeka hasn't paid rent for 3 months") == ["Chukwuemeka"]


def test_words_that_only_could_be_names_are_left_alone() -> None:
    # frequent English words typed in lower case, stop words, places, and particles of longer names
    assert names_in("will you ask grace if she wants it? ask will. tell me. email support") == []
    assert names_in("any OpenAI-compatible server works too") == []
    assert names_in("The meeting with Paris and Berlin teams is in April; ask the team about Rose") == []
    assert names_in("Domicilio: Calle Virgen del Rocio, 19. La cour d'appel de Svea a statué.") == []
    assert names_in("M. Peter Darby était là") == ["Peter Darby"]  # a run, not its second word alone


def test_chinese_people_named_by_surname_title_or_nickname() -> None:
    from rewriters.detectors.chinese import ChineseNameDetector

    detector = ChineseNameDetector(0.7)

    def chinese(text: str) -> list[str]:
        return [text[s.start : s.end] for s in detector.detect([text])[0] if s.label == "PERSON"]

    assert chinese("给我们班主任孙老师写请假条，说我女儿何思琪发烧了") == ["孙", "何思琪"]
    assert chinese("房东姓陈。请问刘律师在吗？王医生说要复查。") == ["陈", "刘", "王"]
    assert chinese("我儿子乐乐今年5岁") == ["乐乐"]
    assert chinese("这位老师很好，天天开心，我们常常见面。姓名是必填项") == []
