"""Elman 1990's sentence grammar ("Finding Structure in Time", Cognitive Science 14).

29 words, 16 three- or two-word sentence templates; a corpus is random sentences
concatenated with no boundary marker, one word per step, one-hot over 31 bits
(29 words and 2 spare). The target of step i is word i + 1.

Category assignment. The paper's Table 3 lists two examples per category; the
rest follow its logic. The paper notes that some categories include others,
and we apply that the same way on both sides of the animacy line: NOUN-ANIM
(any animal) includes the humans and the aggressors, as NOUN-INANIM (any
object) includes the breakables and the foods. So "the man chases the dog"
and "the cat chases the dragon" are both template 9 (ANIM TRAN ANIM), as a
glass is an inanimate object in template 2 (HUM PERCEPT INANIM):

    NOUN-HUM man woman boy girl       VERB-INTRAN think sleep exist
    NOUN-AGRESS dragon monster lion    VERB-TRAN see chase like
    NOUN-ANIM cat mouse dog + HUM + AGRESS          VERB-AGPAT move break
    NOUN-FRAG glass plate              VERB-PERCEPT smell see
    NOUN-FOOD cookie bread sandwich    VERB-DESTROY break smash
    NOUN-INANIM book rock car + FRAG + FOOD        VERB-EAT eat

With NOUN-ANIM holding only cat, mouse and dog (our first reading), no
template slot mixes humans, aggressors and other animals; the networks
trained on that grammar split the animates from all other words at the top
of the dendrogram of per-word hidden states (3 seeds of 3), where Elman's
Figure 7 splits nouns from verbs.

Sentences draw a template uniformly, then each word uniformly from its slot's
category. The true next-word likelihoods follow from that: given the words of
the current sentence so far, the posterior over templates weights each
template's next slot (uniform over its category), and a template that has
ended contributes the first-word distribution of a fresh sentence.
"""

import numpy as np

__all__ = [
    "WORDS", "CATEGORIES", "TEMPLATES", "INPUT_DIM", "sentences", "corpus", "true_likelihoods",
    "is_valid_sentence", "cosine_to_truth", "rms_to_truth",
]

WORDS = (
    "man woman boy girl cat mouse dog dragon monster lion book rock car glass plate cookie bread sandwich "
    "think sleep exist see chase like move break smell smash eat"
).split()
INPUT_DIM = 31  # 29 words + 2 spare bits, as in the paper

_HUM, _AGRESS = ["man", "woman", "boy", "girl"], ["dragon", "monster", "lion"]
_FRAG, _FOOD = ["glass", "plate"], ["cookie", "bread", "sandwich"]
CATEGORIES = {
    "HUM": _HUM,
    "ANIM": ["cat", "mouse", "dog"] + _HUM + _AGRESS,
    "AGRESS": _AGRESS,
    "INANIM": ["book", "rock", "car"] + _FRAG + _FOOD,
    "FRAG": _FRAG,
    "FOOD": _FOOD,
    "INTRAN": ["think", "sleep", "exist"],
    "TRAN": ["see", "chase", "like"],
    "AGPAT": ["move", "break"],
    "PERCEPT": ["smell", "see"],
    "DESTROY": ["break", "smash"],
    "EAT": ["eat"],
}
TEMPLATES = (
    ("HUM", "EAT", "FOOD"), ("HUM", "PERCEPT", "INANIM"), ("HUM", "DESTROY", "FRAG"), ("HUM", "INTRAN"),
    ("HUM", "TRAN", "HUM"), ("HUM", "AGPAT", "INANIM"), ("HUM", "AGPAT"), ("ANIM", "EAT", "FOOD"),
    ("ANIM", "TRAN", "ANIM"), ("ANIM", "AGPAT", "INANIM"), ("ANIM", "AGPAT"), ("INANIM", "AGPAT"),
    ("AGRESS", "DESTROY", "FRAG"), ("AGRESS", "EAT", "HUM"), ("AGRESS", "EAT", "ANIM"), ("AGRESS", "EAT", "FOOD"),
)
_INDEX = {word: i for i, word in enumerate(WORDS)}
_LENGTHS = np.array([len(t) for t in TEMPLATES])


def _slot_tables():
    """P[t, j, w]: probability that slot j of template t holds word w (zero past the end)."""
    table = np.zeros((len(TEMPLATES), 3, len(WORDS)))
    for t, template in enumerate(TEMPLATES):
        for j, category in enumerate(template):
            table[t, j, [_INDEX[w] for w in CATEGORIES[category]]] = 1.0 / len(CATEGORIES[category])
    return table


_P = _slot_tables()
_FIRST_WORD = _P[:, 0].mean(axis=0)  # next-word distribution at a sentence start


def sentences(count, seed=0):
    """`count` random sentences: (templates (N,), words (N, 3) ids, -1 past a sentence's end)."""
    rng = np.random.default_rng(seed)
    templates = rng.integers(len(TEMPLATES), size=count)
    # Inverse-CDF sampling of every slot at once: cumulative P along the words axis.
    u = rng.random((count, 3, 1))
    words = (np.cumsum(_P[templates], axis=-1) < u).sum(axis=-1)  # (N, 3)
    words[np.arange(3)[None, :] >= _LENGTHS[templates][:, None]] = -1
    return templates, words


def true_likelihoods(words):
    """The grammar's next-word distribution after each word of each sentence.

    Args:
        words: (N, 3) ids, -1 past each sentence's end.

    Returns:
        (N, 3, 29): row k is P(next word | the sentence's words 0..k); rows
        past a sentence's end are zero.
    """
    count = len(words)
    posterior = np.full((count, len(TEMPLATES)), 1.0 / len(TEMPLATES))
    out = np.zeros((count, 3, len(WORDS)))
    for k in range(3):
        present = words[:, k] >= 0
        posterior = posterior * _P[:, k, :][:, np.clip(words[:, k], 0, None)].T  # (N, 16)
        norm = posterior.sum(axis=1, keepdims=True)
        posterior = np.divide(posterior, norm, out=np.zeros_like(posterior), where=norm > 0)
        ended = _LENGTHS[None, :] <= k + 1  # (1, 16): template finished at word k
        continuing = _P[:, k + 1, :] if k < 2 else np.zeros((len(TEMPLATES), len(WORDS)))
        nxt = (posterior * ~ended) @ continuing + (posterior * ended).sum(axis=1, keepdims=True) * _FIRST_WORD
        out[present, k] = nxt[present]
    return out


def corpus(num_sentences=10_000, seed=0):
    """Elman's corpus: the sentences as one word stream.

    Returns:
        dict with `ids` (N,) word ids, `truth` (N, 31) the true distribution
        of the word after each one (two spare bits at zero), `sentence_starts`
        (S,) positions of each sentence's first word.
    """
    _, words = sentences(num_sentences, seed)
    flat = words.reshape(-1)
    keep = flat >= 0
    truth = np.zeros((flat.size, INPUT_DIM))
    truth[:, : len(WORDS)] = true_likelihoods(words).reshape(-1, len(WORDS))
    lengths = (words >= 0).sum(axis=1)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return {"ids": flat[keep].astype(np.int32), "truth": truth[keep], "sentence_starts": starts}


def is_valid_sentence(words):
    """True when the word ids (no padding) fill some template."""
    names = [WORDS[w] for w in words]
    return any(
        len(t) == len(names) and all(w in CATEGORIES[c] for w, c in zip(names, t)) for t in TEMPLATES
    )


def cosine_to_truth(predicted, truth):
    """Mean cosine between predicted and true next-word distributions, row by row."""
    predicted, truth = np.asarray(predicted, np.float64), np.asarray(truth, np.float64)
    dots = (predicted * truth).sum(-1)
    return float(np.mean(dots / (np.linalg.norm(predicted, axis=-1) * np.linalg.norm(truth, axis=-1))))


def rms_to_truth(predicted, truth):
    """Root mean squared error against the true distributions (over every output bit)."""
    return float(np.sqrt(np.mean((np.asarray(predicted, np.float64) - truth) ** 2)))
