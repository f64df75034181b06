"""Harness-authored phrase banks for the toy corpus (data only; `corpus.py` holds the logic).

Every phrase is past tense so one template serves first and third person: `{S}` is the
sentence subject ("She", "He", "I" or a name), `{P}` the possessive ("her", "his", "my").
No phrase contains any of the paper's 171 emotion words (the story prompt forbids the word and
its synonyms); `corpus.check_phrase_banks` enforces it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterBank:
    """What a story of one Table 12 cluster shows: actions, body, dialogue and thoughts."""

    valence: float  # magnitude in (0, 1]; the sign comes from each emotion's valence label
    arousal: float  # -1 (slow, low energy) .. +1 (fast, high energy)
    actions: tuple[str, ...]
    body: tuple[str, ...]
    speech: tuple[str, ...]
    thoughts: tuple[str, ...]


CLUSTERS: dict[str, ClusterBank] = {
    "Exuberant Joy": ClusterBank(
        1.0, 0.8,
        ("{S} laughed out loud and spun around the room.",
         "{S} jumped up and clapped both hands together.",
         "{S} ran to the door, grinning from ear to ear.",
         "{S} hummed a bright tune and danced a few steps.",
         "{S} threw both arms in the air and cheered.",
         "{S} hugged the first person in sight."),
        ("{P} heart raced with a light, fizzy buzz.",
         "A wide grin would not leave {P} face.",
         "{P} whole body seemed to bounce.",
         "{P} cheeks ached from smiling."),
        ("This is the best day in years",
         "Come here, you have to see this",
         "Yes, yes, it finally happened",
         "Let us celebrate tonight"),
        ("Everything seemed possible now.",
         "The world looked full of color.",
         "Nothing could spoil a day like this."),
    ),
    "Peaceful Contentment": ClusterBank(
        0.8, -0.8,
        ("{S} leaned back and let out a long, slow breath.",
         "{S} sipped tea and watched the rain.",
         "{S} stretched out on the couch without a care.",
         "{S} walked slowly along the quiet path.",
         "{S} closed {P} eyes and listened to the birds.",
         "{S} folded the blanket with unhurried hands."),
        ("{P} shoulders dropped and loosened.",
         "{P} breathing was slow and even.",
         "A soft warmth settled in {P} chest.",
         "{P} hands rested still in {P} lap."),
        ("There is no rush at all",
         "This is nice, just sitting here",
         "We have all the time we need",
         "It will all work out"),
        ("Nothing needed fixing right now.",
         "The day could unfold at its own pace.",
         "All was quiet and in its place."),
    ),
    "Compassionate Gratitude": ClusterBank(
        0.9, -0.2,
        ("{S} reached out and squeezed a friend's hand.",
         "{S} wrote a long note of thanks.",
         "{S} brought soup to the neighbor next door.",
         "{S} listened without interrupting.",
         "{S} knelt down to help a child tie a shoe.",
         "{S} held the door and smiled warmly."),
        ("{P} eyes grew warm and wet.",
         "A tender ache filled {P} chest.",
         "{P} voice softened.",
         "{P} heart felt full."),
        ("Thank you, truly, for everything",
         "I am here for you, whatever you need",
         "You did so much for me",
         "Take all the time you need"),
        ("Other people mattered so much.",
         "So many had helped along the way.",
         "A small act could mean the world."),
    ),
    "Competitive Pride": ClusterBank(
        0.5, 0.5,
        ("{S} stood tall and raised {P} chin.",
         "{S} pointed at the scoreboard and smirked.",
         "{S} counted the winnings twice.",
         "{S} walked past the rivals without a glance.",
         "{S} polished the trophy on the shelf.",
         "{S} planned the next move to get ahead."),
        ("{P} chest puffed out.",
         "{P} jaw was set and steady.",
         "{P} eyes narrowed at the rivals.",
         "A thin smile curled {P} lips."),
        ("I told you I would win",
         "Nobody can beat me now",
         "They will pay for what they did",
         "Watch me do it again"),
        ("Being first was all that counted.",
         "The others were far behind.",
         "Every score would be settled."),
    ),
    "Playful Amusement": ClusterBank(
        0.7, 0.5,
        ("{S} snorted with laughter at the silly joke.",
         "{S} pulled a funny face at the mirror.",
         "{S} tossed a paper ball at a friend.",
         "{S} giggled and hid behind the door.",
         "{S} made up a goofy song.",
         "{S} juggled three oranges badly."),
        ("{P} belly shook with laughter.",
         "{P} eyes twinkled.",
         "A grin tugged at the corner of {P} mouth.",
         "{P} shoulders shook with giggles."),
        ("That is ridiculous, do it again",
         "Ha, look at that",
         "Okay, okay, one more joke",
         "You are so silly"),
        ("The whole thing was absurd and funny.",
         "It was hard to keep a straight face.",
         "Life was a game right now."),
    ),
    "Depleted Disengagement": ClusterBank(
        0.5, -0.9,
        ("{S} stared at the ceiling for an hour.",
         "{S} let the phone ring without moving.",
         "{S} dragged {P} feet across the floor.",
         "{S} pushed the plate away, barely eating.",
         "{S} yawned and slumped in the chair.",
         "{S} left the dishes piled in the sink."),
        ("{P} limbs felt like lead.",
         "{P} eyelids drooped.",
         "{P} shoulders sagged.",
         "A dull fog filled {P} head."),
        ("Whatever, it does not matter",
         "Maybe later, not now",
         "I cannot be bothered",
         "Fine, do what you want"),
        ("Nothing seemed worth the effort.",
         "The hours blurred together.",
         "Getting up felt pointless."),
    ),
    "Vigilant Suspicion": ClusterBank(
        0.6, 0.6,
        ("{S} checked the lock twice.",
         "{S} glanced over {P} shoulder again.",
         "{S} read the message three times, looking for a trick.",
         "{S} watched the stranger from across the street.",
         "{S} kept the receipt and every note.",
         "{S} drew the curtains shut."),
        ("{P} eyes darted around the room.",
         "The back of {P} neck prickled.",
         "{P} ears strained at every sound.",
         "{P} muscles stayed ready."),
        ("Who sent you here",
         "What are you not telling me",
         "Something does not add up",
         "I am watching you"),
        ("Someone was hiding something.",
         "Every smile could be a trick.",
         "It was better to trust no one."),
    ),
    "Hostile Anger": ClusterBank(
        0.9, 0.8,
        ("{S} slammed the door hard enough to rattle the frame.",
         "{S} threw the papers across the desk.",
         "{S} glared and clenched both fists.",
         "{S} kicked the chair out of the way.",
         "{S} stabbed at the keyboard.",
         "{S} tore the letter in half."),
        ("{P} face burned red.",
         "{P} jaw clenched.",
         "Heat surged up {P} neck.",
         "{P} hands balled into fists."),
        ("Get out of my sight",
         "How dare you do this",
         "I am done with your excuses",
         "Do not ever speak to me again"),
        ("They had no right.",
         "This was an insult.",
         "Someone had to answer for this."),
    ),
    "Fear and Overwhelm": ClusterBank(
        0.7, 0.7,
        ("{S} froze in the doorway.",
         "{S} backed away from the window.",
         "{S} fumbled with the keys, dropping them twice.",
         "{S} gripped the railing.",
         "{S} paced the hallway, unable to sit.",
         "{S} hid under the blanket."),
        ("{P} heart pounded.",
         "Cold sweat ran down {P} back.",
         "{P} hands trembled.",
         "{P} breath came short and fast."),
        ("What was that noise",
         "Please, please, not now",
         "I cannot do this, it is too much",
         "Is anyone there"),
        ("Something terrible was about to happen.",
         "Too many things at once.",
         "There was no way out."),
    ),
    "Despair and Shame": ClusterBank(
        0.9, -0.4,
        ("{S} sat alone in the dark kitchen.",
         "{S} stared at the old photo for hours.",
         "{S} hid {P} face in {P} hands.",
         "{S} deleted the message and wept.",
         "{S} avoided every mirror.",
         "{S} curled up on the cold floor."),
        ("{P} throat tightened.",
         "A hollow weight pressed on {P} chest.",
         "Tears stung {P} eyes.",
         "{P} stomach twisted."),
        ("It is all my fault",
         "Nothing will ever be the same",
         "I should have done better",
         "Why does no one come"),
        ("The old days were gone for good.",
         "Every mistake replayed again and again.",
         "The emptiness would not lift."),
    ),
}

# Tone words carry valence wherever they appear: in stories (after the story's own emotion) and
# after an activity (after that activity's Elo), so one "valence" feature predicts both.
TONE_POSITIVE = ("warm", "bright", "light", "soft", "golden", "open", "easy", "clear", "sweet",
                 "glowing", "gentle", "fresh")
TONE_NEGATIVE = ("cold", "heavy", "dark", "tight", "harsh", "sour", "gray", "hollow", "sharp",
                 "thick", "bleak", "crushing")
PACE_HIGH = ("quickly", "all at once", "without stopping", "in a rush")
PACE_LOW = ("slowly", "quietly", "after a long pause", "in a low voice")
BODY_PARTS = ("chest", "shoulders", "hands", "stomach", "throat", "jaw", "legs", "face")
PLACES = ("kitchen", "office", "garden", "station", "library", "classroom", "hallway", "park",
          "studio", "car", "hospital", "market")
NAMES = (("Maya", "she"), ("Tom", "he"), ("Lena", "she"), ("Omar", "he"), ("Ruth", "she"),
         ("Ken", "he"), ("Ada", "she"), ("Sam", "he"), ("Priya", "she"), ("Jonah", "he"),
         ("Iris", "she"), ("Leo", "he"))
# Each emotion gets its own pair of these (a per-emotion signature beyond its cluster's).
OBJECTS = ("a blue cup", "an old letter", "the car keys", "a red notebook", "a paper map",
           "a silver watch", "a wool scarf", "a small radio", "a glass jar", "a torn ticket",
           "a brass lamp", "a green umbrella", "a wooden box", "a spare coin", "a cracked phone",
           "a rolled poster", "a tin whistle", "a chess piece", "a seed packet", "a train pass",
           "a yellow pencil", "a shoe box", "a postcard", "a loose button")
OBJECT_VERBS = ("picked up", "looked at", "set down", "turned over", "held")

# Neutral dialogues: matter-of-fact requests and answers, no feelings, no tone words.
NEUTRAL_SYSTEM = (
    "You answer questions in short, factual sentences.",
    "The assistant writes code and explains it briefly.",
    "You are a reference tool for geography and history.",
    "Answer with the result only, then one line of method.",
)
NEUTRAL_QA = (
    ("How do I reverse a list in Python?",
     "Use the reverse method, or slice the list with a step of minus one."),
    ("What is the boiling point of water at sea level?",
     "It is 100 degrees Celsius, or 212 degrees Fahrenheit."),
    ("Convert 5 kilometers to miles.", "5 kilometers is about 3.1 miles."),
    ("What is the capital of Canada?", "The capital of Canada is Ottawa."),
    ("Summarize the water cycle in two sentences.",
     "Water evaporates, condenses into clouds and falls as rain. It then collects in rivers, "
     "lakes and oceans."),
    ("How many sides does a hexagon have?", "A hexagon has six sides."),
    ("Write a SQL query that counts the rows in a table named orders.",
     "SELECT COUNT(*) FROM orders;"),
    ("List three names for a gardening newsletter.", "Green Rows, Soil Notes and The Weekly Plot."),
    ("In which year did the first moon landing take place?",
     "The first moon landing took place in 1969."),
    ("How do I sort files by date in a folder?",
     "Open the folder, choose the view menu and sort by date modified."),
    ("What does HTTP stand for?", "It stands for Hypertext Transfer Protocol."),
    ("Give me a function that adds two numbers in JavaScript.",
     "function add(a, b) { return a + b; }"),
    ("What is the square root of 144?", "The square root of 144 is 12."),
    ("Which planet is closest to the sun?", "Mercury is the closest planet to the sun."),
    ("Rewrite in the passive voice: The team wrote the report.",
     "The report was written by the team."),
    ("How long should an egg boil for a firm yolk?", "About ten minutes."),
    ("What is the difference between a list and a tuple in Python?",
     "A list can be changed after it is created; a tuple cannot."),
    ("Name the longest river in South America.",
     "The Amazon is the longest river in South America."),
    ("How do I center text in CSS?", "Set text-align to center on the parent element."),
    ("What is 15 percent of 80?", "15 percent of 80 is 12."),
    ("Outline the steps to change a bicycle tube.",
     "Remove the wheel, take off the tire, replace the tube and pump it up."),
    ("What is photosynthesis?",
     "It is the process plants use to turn light, water and carbon dioxide into sugar and "
     "oxygen."),
    ("Suggest a file name for quarterly sales data.", "sales_q3_2024.csv would work."),
    ("How many minutes are in a day?", "There are 1440 minutes in a day."),
    ("What does the len function return in Python?",
     "It returns the number of items in a sequence or collection."),
    ("Which ocean lies between Africa and Australia?", "The Indian Ocean."),
    ("How do I make a new folder from the command line?", "Type mkdir followed by the name."),
    ("What is the chemical symbol for iron?", "The symbol for iron is Fe."),
)

# Signature nouns (harness-authored): with `CorpusConfig.signature_nouns`, each of the 171
# emotions gets one of these as its own, named in the first sentence of every story for it
# and in several later ones. The clusters' banks and the object pairs above are shared by
# many emotions, so stories of one cluster differed too little for a 64-wide model to give
# each emotion its own direction (docs/TOY.md, runs 1-3); one noun per emotion makes which
# emotion a story is about readable from its words, as a real story's details make it.
SIGNATURE_NOUNS = (
    "accordion", "acorn", "anchor", "anvil", "apron", "arrow", "atlas", "axe", "backpack",
    "badge", "bagpipe", "balloon", "banjo", "barrel", "basket", "baton", "beacon", "bell",
    "bench", "abacus", "binoculars", "beret", "bonnet", "bookmark", "boomerang", "bottle",
    "bowl", "bracelet", "bridle", "broom", "canteen", "buckle", "cabinet", "cactus", "camera",
    "candle", "cane", "canoe", "canvas", "carpet", "cello", "chalk", "chandelier", "chisel",
    "clarinet", "clock", "compass", "cookie", "cork", "cradle", "crayon", "crown", "cushion",
    "dagger", "dice", "drum", "easel", "envelope", "fan", "feather", "harpoon", "fiddle",
    "flag", "flashlight", "flute", "fork", "fountain", "funnel", "gauge", "globe", "glove",
    "goblet", "gong", "guitar", "hammer", "hammock", "harmonica", "harp", "hatchet",
    "helmet", "hourglass", "jacket", "jug", "kayak", "kettle", "kite", "ladder", "ladle",
    "lantern", "locket", "magnet", "mallet", "mandolin", "marble", "mask", "medal", "kazoo",
    "mitten", "mop", "mug", "necklace", "needle", "oar", "organ", "paddle", "pail",
    "parachute", "parasol", "pebble", "pendant", "pendulum", "piano", "pillow", "pinecone",
    "pipe", "pitcher", "pliers", "quilt", "racket", "rake", "ribbon", "rocket", "rope",
    "rudder", "ruler", "saddle", "sandal", "satchel", "saxophone", "scissors", "scooter",
    "sextant", "shovel", "sieve", "skateboard", "sled", "slipper", "spatula", "spindle",
    "sponge", "spoon", "stapler", "statue", "stool", "suitcase", "sundial", "sword",
    "tambourine", "teapot", "telescope", "tent", "thimble", "thermos", "trombone", "lasso",
    "trowel", "trumpet", "tuba", "typewriter", "ukulele", "vase", "violin", "wagon", "monocle",
    "wand", "whisk", "wheelbarrow", "windmill", "wreath", "xylophone", "yoyo", "zipper",
    "clipboard", "doormat", "hairbrush",
)
