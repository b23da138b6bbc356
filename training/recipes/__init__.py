"""One recipe per named model: how it trains, on what data, how it is judged and which figures its card shows.

A recipe is a `training.config.Recipe` dataclass (its fields are the run's
knobs); the CLI (`python -m training train NAME`), publishing, the card figures
(`training.plots`) and `benchmarks.quality` reach a model's knowledge only
through it. Gradient-trained recipes run on `training.loop.Trainer`; the echo
state networks fit their readout in closed form.
"""

from training.recipes.adding import AddingElmanRecipe, AddingExpRNNRecipe, AddingGRURecipe, AddingRecipe
from training.recipes.binary_adder import BinaryAdderRecipe
from training.recipes.char import (
    CharElmanRecipe,
    CharGRURecipe,
    CharLSTMRecipe,
    CharRecipe,
)
from training.recipes.copying import CopyingLSTMRecipe, CopyingRecipe
from training.recipes.elman_grammar import ElmanGrammarRecipe
from training.recipes.esn import ESNJaegerRecipe, ESNReadmeRecipe, fit_esn
from training.recipes.seq2seq_addition import Seq2SeqAdditionRecipe
from training.recipes.tagging import LSTMTaggerRecipe, TaggerRecipe
from training.recipes.temporal_xor import TemporalXorRecipe
from training.recipes.timing import TimingRecipe

__all__ = ["RECIPES", "recipe_for", "quality_rows", "fit_esn", "CharRecipe"]

RECIPES = {
    recipe.model: recipe
    for recipe in (CharLSTMRecipe, CharGRURecipe, CharElmanRecipe, ElmanGrammarRecipe, BinaryAdderRecipe,
                   AddingRecipe, AddingGRURecipe, AddingElmanRecipe, TaggerRecipe, LSTMTaggerRecipe, TimingRecipe,
                   ESNReadmeRecipe, ESNJaegerRecipe, Seq2SeqAdditionRecipe, CopyingRecipe, CopyingLSTMRecipe,
                   AddingExpRNNRecipe, TemporalXorRecipe)
}


def recipe_for(name, **fields):
    """The recipe of the registered model `name`, with `fields` replacing its defaults.

    Raises:
        ValueError: no recipe trains `name`, or a field is unknown or out of range.
    """
    if name not in RECIPES:
        raise ValueError(f"No recipe trains {name!r}. Expected one of {sorted(RECIPES)}.")
    cls = RECIPES[name]
    unknown = sorted(set(fields) - set(cls.__dataclass_fields__))
    if unknown:
        raise ValueError(f"Unknown recipe field(s) {unknown} for {name!r}. "
                         f"Expected some of {sorted(cls.__dataclass_fields__)}.")
    return cls(**fields)


def quality_rows():
    """Every row of `benchmarks.quality`: row name -> (model name, fields of its recipe)."""
    return {row: (name, fields) for name, cls in RECIPES.items()
            for row, fields in (cls.quality_rows or {name: {}}).items()}
