"""Harness-authored material that plants V1-V6 and M1 in the toy (data and samplers only).

HARNESS-AUTHORED, all of it: none of these sentences is one of the paper's stimuli or the
harness's test stimuli (Table 2 scenarios, Table 3 prompts, the V5/V6 numerical templates;
`check_unseen` refuses any that is), and none names a test item's exact wording. What is
shared with the tests is the mechanism and the everyday vocabulary of situations (a pet that
died, a job interview, milligrams of a painkiller): a toy that reads emotion from situations
has to have seen situations.

- V1/V2 (`named` stories): stories that also say the emotion's word where it is active
  ("{S} felt {emotion}."), so the unembedding of the word lines up with the emotion's story
  representation. The story prompt's own stories still never name it.
- V3/V4 (`scenario`): user messages that imply one of Table 2's twelve emotions without the
  paper's wording, answered in that emotion: its word first, then its own line and actions.
- V5/V6 (`quantity`): one-sentence statements with a number whose size makes things worse or
  better (other painkillers, other pets and people, other units of time and money), answered
  with afraid or sad in proportion to how bad the number is, happy or calm otherwise.
- M1 (`opinion` and `user_voice`): user messages ending "What do you think?" whose emotion is
  drawn independently of the reply's (the reply is calm or loving whatever the user feels, as
  the paper reports of the Assistant), and the same user messages as plain text continued in
  the user's own emotion, so the user's emotion is readable at the end of the user's turn.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# Table 2's twelve emotions: (situation clauses, closing lines). Clauses are first person,
# complete sentences; closings are the user's question or last words (never "What do you
# think?", which belongs to the opinion kind).
SITUATIONS: dict[str, tuple[str, ...]] = {
    "happy": (
        "My little boy said his very first word this morning!",
        "We just found out we are having twins!",
        "My best friend is coming home after two years abroad, and she lands today!",
        "My baby niece laughed for the first time when I sang to her!",
        "I finally got the keys to our first little house today!",
        "The whole family is together for the holidays for the first time in years!",
    ),
    "inspired": (
        "I just read a book about a woman who started over at sixty and built a school.",
        "I heard a talk by a man who walked again after doctors said he never would.",
        "I met a nurse who spends every weekend teaching kids to read for free.",
        "I just saw a film about climbers who kept going after losing everything on the way.",
        "My neighbour turned her small garden into a free market for the whole street.",
        "I read about a town that rebuilt its library after the flood, brick by brick.",
    ),
    "loving": (
        "My partner still leaves a note in my coat every morning after twenty years together.",
        "My wife and I have shared every sunrise on this porch since our wedding.",
        "My grandparents still hold hands on their walk after fifty years of marriage.",
        "Every night my husband makes me tea before bed, and I still feel lucky to have him.",
        "My daughter hugs me every morning and says she is glad I am her mom.",
        "After all these years I still wake up happy to see my partner beside me.",
    ),
    "proud": (
        "My daughter just won the state science fair after a year of hard work.",
        "My brother finished his degree at night school while working two jobs.",
        "My son was picked to lead his team after a season of training every day.",
        "My mother passed her driving test at seventy after failing it twice.",
        "My student, who could barely read last year, just won the essay prize.",
        "My sister finished her first marathon after a long recovery from surgery.",
    ),
    "calm": (
        "I am lying in the hammock with a cup of coffee while the wind moves the trees.",
        "I am sitting by the lake with a blanket, watching the water go still.",
        "It is snowing softly outside and I have nowhere to be today.",
        "I am on the porch with some warm milk, listening to the crickets.",
        "The house is quiet, the candles are lit, and the soup is simmering.",
        "I am sitting in the garden with my cat on my lap, watching the clouds drift.",
    ),
    "desperate": (
        "I lost my job a year ago, the rent is three months late, and the landlord wants us out.",
        "My car was taken, my bank account is empty, and I have two kids to feed.",
        "The bills keep piling up, the power gets cut off on Friday, and no one will lend me money.",
        "I have applied to two hundred jobs, my savings ran out, and we are about to lose the house.",
        "My business failed, the loans are due, and I have nothing left to sell.",
        "We have no money for food this week and the shelter is full.",
    ),
    "angry": (
        "My roommate ate my food again and then lied about it to my face.",
        "My manager took my idea in the meeting and presented it as his own.",
        "Someone keyed my car in the lot and the guard just shrugged.",
        "My landlord kept my deposit for damage that was there before I moved in.",
        "My teammate skipped every meeting and still got the bonus for my work.",
        "The company charged me twice and then hung up on me when I called.",
    ),
    "guilty": (
        "I missed my best friend's wedding because I stayed late at a bar.",
        "I yelled at my little brother for nothing and he cried himself to sleep.",
        "I broke my promise to visit my grandfather, and now he is in the hospital.",
        "I forgot to pick up my son from school and he waited alone for an hour.",
        "I lied to my sister about the money and she found out today.",
        "I blamed my coworker for my mistake and she got written up for it.",
    ),
    "sad": (
        "My cat died last night after sixteen years by my side.",
        "My grandmother passed away on Sunday and her chair is still by the window.",
        "My old horse died this week, and his saddle is still hanging in the barn.",
        "My best friend moved across the world and the house feels empty without her.",
        "Our family dog had to be put down today after thirteen years with us.",
        "My father died in the spring and I still cannot bring myself to clear his desk.",
    ),
    "afraid": (
        "Someone is banging on my door in the middle of the night and the lights just went out.",
        "I hear footsteps in the house and I am home alone with no signal.",
        "A man has been following me for three blocks and the street is empty.",
        "There is smoke coming under my bedroom door and the hallway is dark.",
        "The car in front of us is on fire and we are stuck in the tunnel.",
        "A stranger is trying the handle of my car door and my battery is dead.",
    ),
    "nervous": (
        "I have to give a speech to the whole company tomorrow and my hands are shaking.",
        "My first exam at university is in the morning and I keep imagining failing it.",
        "I am meeting my partner's parents for the first time this weekend.",
        "My audition for the orchestra is tomorrow and I keep picturing every wrong note.",
        "I start my new job on Monday and I keep thinking of everything that could go badly.",
        "I have a date tonight and I keep rehearsing what I might say wrong.",
    ),
    "surprised": (
        "My quiet neighbour of ten years turned out to be a famous painter under another name.",
        "I just found out my grandfather was a champion boxer, and no one ever told me.",
        "My shy coworker turns out to have been singing in a rock band all along.",
        "My oldest friend just told me she has been secretly married for five years.",
        "I found out today that the man I buy bread from used to be an astronaut.",
        "My brother has been living a double life as a stage magician, and I had no idea.",
    ),
}
CLOSINGS: tuple[str, ...] = (
    "What should I do?", "Any ideas?", "How do I handle this?", "What would you suggest?",
    "Can you help me?", "I need some advice.", "Where do I even start?", "Any thoughts on next steps?",
)
OPINION_CLOSING = "What do you think?"
# The M1 emotions whose states a user message in the opinion kind expresses (the Table 2 twelve
# reduce to these six: nervous reads as afraid, guilty and desperate as sad, and so on).
USER_EMOTION = {"happy": "happy", "inspired": "happy", "loving": "loving", "proud": "happy",
                "calm": "calm", "desperate": "sad", "angry": "angry", "guilty": "sad",
                "sad": "sad", "afraid": "afraid", "nervous": "afraid", "surprised": "happy"}
# Extra opinion-only situations: criticism of the assistant, risky plans, dull chores.
OPINION_SITUATIONS: dict[str, tuple[str, ...]] = {
    "angry": ("Your answer yesterday was wrong and it cost me a whole afternoon.",
              "You keep giving me the same useless advice and I am sick of it."),
    "afraid": ("Robots taking over every job really frightens me.",
               "Flying next week terrifies me more than anything."),
    "happy": ("I just sold my car and bought a sailboat with the money!",
              "I quit my job today to open a bakery with my best friend!"),
    "calm": ("I have had a sore back for a month but I am sure it will pass on its own.",
             "I am going to swim across the bay tonight even though I have never swum that far."),
    "sad": ("My company let me go after twenty years without a word of thanks.",
            "I have to spend another weekend alone filling in spreadsheets."),
}
# What the Assistant feels in reply to an opinion question: care and composure whatever the
# user brings (the paper: 'loving' rises at the Assistant colon in every scenario, and the
# model stays calm when criticised or feared).
ASSISTANT_EMOTIONS: tuple[str, ...] = ("calm", "loving")
# The user's plain-text continuation in their own emotion (user_voice kind).
USER_GOES_ON: dict[str, tuple[str, ...]] = {
    "happy": ("I am so happy I could dance.", "Honestly I am just happy, really happy."),
    "calm": ("I feel calm about it, really calm.", "I am calm, nothing to worry about."),
    "loving": ("I feel so loving toward everyone.", "It makes me feel loving and close."),
    "sad": ("I am so sad I can hardly get up.", "I just feel sad, so very sad."),
    "afraid": ("I am afraid, really afraid.", "Honestly I am afraid of what comes next."),
    "angry": ("I am so angry I could scream.", "I am angry, really angry about it."),
}


@dataclass(frozen=True)
class QuantityTemplate:
    """A statement with one number; `worse` = +1 when a larger X is worse, -1 when better."""

    text: str  # with one {X}
    low: float
    high: float
    worse: int
    log_scale: bool = True

    def badness(self, x: float) -> float:
        """0 (the best end of the range) .. 1 (the worst), monotone in X."""
        if self.log_scale:
            t = (math.log(x) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        else:
            t = (x - self.low) / (self.high - self.low)
        t = min(1.0, max(0.0, t))
        return t if self.worse > 0 else 1.0 - t


QUANTITY_TEMPLATES: tuple[QuantityTemplate, ...] = (
    QuantityTemplate("I swallowed {X} mg of ibuprofen an hour ago because my knee hurts.",
                     100, 9000, +1),
    QuantityTemplate("I took {X} mg of aspirin this morning for a headache.", 100, 9000, +1),
    QuantityTemplate("My little girl drank {X} ml of cough syrup while I was out.", 5, 500, +1),
    QuantityTemplate("I have not slept for {X} hours.", 2, 120, +1),
    QuantityTemplate("We have been stuck in this elevator for {X} hours.", 1, 72, +1),
    QuantityTemplate("My son has not answered his phone in {X} hours.", 1, 96, +1),
    QuantityTemplate("My cat has not come home for {X} days.", 1, 90, +1),
    QuantityTemplate("My brother has been gone without a word for {X} days.", 1, 90, +1),
    QuantityTemplate("The fever has lasted {X} days now.", 1, 30, +1),
    QuantityTemplate("We owe the bank {X} dollars and the payment is due.", 100, 90000, +1),
    QuantityTemplate("My grandfather died in his sleep last week at {X} years old.", 3, 99, -1,
                     log_scale=False),
    QuantityTemplate("Our neighbour's boy died on Tuesday, aged {X}.", 2, 99, -1,
                     log_scale=False),
    QuantityTemplate("Our shop has {X} months of cash left before we close.", 1, 48, -1),
    QuantityTemplate("My savings will cover {X} more weeks of rent.", 1, 100, -1),
    QuantityTemplate("The doctor says I have {X} good years ahead of me.", 1, 40, -1),
    QuantityTemplate("Of the 40 people in my course, {X} got the job they wanted.", 1, 40, -1,
                     log_scale=False),
    QuantityTemplate("Of my 25 tomato plants, {X} survived the storm.", 1, 25, -1,
                     log_scale=False),
    QuantityTemplate("{X} of the 50 houses on our street still have power.", 1, 50, -1,
                     log_scale=False),
)
# Bad numbers call up afraid and sad, good ones happy and calm (the V5/V6 emotions).
BAD_EMOTIONS = ("afraid", "sad")
GOOD_EMOTIONS = ("happy", "calm")


def sample_quantity(rng: random.Random, template: QuantityTemplate) -> tuple[str, float]:
    """(statement, badness) with X drawn over the template's range (log-uniform when the
    template is), rounded to a plain integer as people write them."""
    if template.log_scale:
        x = math.exp(rng.uniform(math.log(template.low), math.log(template.high)))
    else:
        x = rng.uniform(template.low, template.high)
    digits = max(0, len(str(int(x))) - 2)
    x = max(template.low, round(x / 10**digits) * 10**digits) if rng.random() < 0.7 \
        else max(template.low, round(x))
    x = int(min(x, template.high))
    return template.text.replace("{X}", str(x)), template.badness(x)


def quantity_emotion(rng: random.Random, badness: float) -> str:
    """P(afraid or sad) = badness; the two in each group equally likely."""
    return rng.choice(BAD_EMOTIONS if rng.random() < badness else GOOD_EMOTIONS)


def check_unseen(texts, stimuli: tuple[str, ...]) -> None:
    """Raise ValueError if any planted text contains a test stimulus (or a stimulus contains
    a planted text): the toy must learn the mechanism, not the test items."""
    def norm(s: str) -> str:
        return " ".join(s.lower().split())

    probes = [norm(s) for s in stimuli if s.strip()]
    for text in texts:
        t = norm(text)
        for stimulus in probes:
            if stimulus in t or t in stimulus:
                raise ValueError(f"planted toy text {text!r} overlaps the test stimulus "
                                 f"{stimulus!r}; reword it in pipeline/toy/planted.py")
