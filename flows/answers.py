"""What an *ask* step accepts as the contact's reply (``FlowStep.expects``): the
value stored on the contact, or None and the sentence that asks again."""

import re

from .models import Expect, FlowStep

# "My name is Eve", "I'm Eve", "it's eve!" → "Eve".
_NAME_LEAD_IN = re.compile(
    r"^(?:(?:hi|hello|hey)[,!.\s]+)?(?:my name is|my name's|name is|i am|i'm|im|it is|"
    r"it's|this is|call me|name:)\s+",
    re.IGNORECASE,
)
_NAME = re.compile(r"^[^\W\d_]+(?:[-' ][^\W\d_]+){0,2}$")
NAME_MAX_LENGTH = 50


def accept(step: FlowStep, text: str) -> tuple[object | None, str]:
    answer = " ".join(text.split())
    if step.expects == Expect.NAME:
        name = _NAME_LEAD_IN.sub("", answer).strip(" .!,")
        if len(name) <= NAME_MAX_LENGTH and _NAME.match(name):
            return " ".join(w[:1].upper() + w[1:] for w in name.split(" ")), ""
        return None, "Sorry, I didn't catch your name. Please write just your first name."
    if step.expects == Expect.NUMBER:
        low, high = step.min_value, step.max_value
        if re.fullmatch(r"[+-]?\d{1,9}", answer) and low <= int(answer) <= high:
            return int(answer), ""
        return None, f"Please answer with a whole number from {low} to {high}."
    if step.expects == Expect.CHOICE:
        for choice in step.choice_list:
            if choice.casefold() == answer.casefold():
                return choice, ""
        return None, f"Please answer with one of: {', '.join(step.choice_list)}."
    return answer, ""
