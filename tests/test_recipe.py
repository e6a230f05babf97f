"""Recipes are data: every shipped recipe validates; unknown keys, wrong types and bad combinations are rejected."""
from __future__ import annotations

import pytest

from nlptransfer import recipe as recipes
from nlptransfer.errors import RecipeError, RunError


@pytest.mark.parametrize("name", recipes.shipped_names())
def test_every_shipped_recipe_validates_and_says_how_to_run_it(name):
    r = recipes.load(name)
    assert r.name == name
    text = recipes.find(name).read_text()
    assert text.startswith("#"), "each recipe starts with a header comment"
    assert f"nlptransfer run {name} --data" in text
    assert recipes.from_dict(r.to_dict()) == r  # the resolved recipe round-trips
    from nlptransfer.strategies import learning_rate_warnings
    assert learning_rate_warnings(r) == []  # its lr suits its strategy (and contrastive.lr its body)


def test_shipped_recipes_cover_strategies_tasks_and_families():
    loaded = [recipes.load(n) for n in recipes.shipped_names()]
    assert {r.strategy for r in loaded} >= {"head", "top_k", "full", "lora", "ia3"}
    assert {r.task for r in loaded} == {"sentiment", "classification", "multi_label"}
    assert any(r.data.labels and len(r.data.labels) == 3 for r in loaded)
    assert {r.model for r in loaded} >= {"minilm", "bert-base", "roberta-base"}


def test_overrides_are_typed_and_dotted():
    r = recipes.load("sentiment-minilm", ["training.lr=1e-4", "training.epochs=2", "data.text_columns=[title, body]",
                                          "strategy=lora", "peft.r=4"])
    assert r.training.lr == pytest.approx(1e-4)
    assert r.training.epochs == 2.0
    assert r.data.text_columns == ["title", "body"]
    assert (r.strategy, r.peft.r) == ("lora", 4)


def test_unknown_keys_and_wrong_types_are_listed_together():
    with pytest.raises(RecipeError) as e:
        recipes.load("sentiment-minilm", ["training.lrr=3", "training.epochs=abc", "data.headr=false"])
    msg = str(e.value)
    assert "unknown key 'training.lrr' (did you mean 'lr'?)" in msg
    assert "valid keys here: epochs, batch_size" in msg
    assert "'training.epochs' must be float, got 'abc'" in msg
    assert "unknown key 'data.headr' (did you mean 'header'?)" in msg


@pytest.mark.parametrize("overrides, message", [
    (["strategy=loar"], "unknown strategy 'loar' (did you mean 'lora'?)"),
    (["strategy=full", "peft.r=4"], "'peft' settings are given but strategy is 'full'"),
    (["training.metric=f1"], "training.metric must be one of accuracy, macro_f1"),
    (["data.val_fraction=0", "training.early_stopping=2"], "early_stopping needs a validation split"),
    (["strategy=top_k", "top_k=0"], "top_k must be at least 1"),
    (["pooling=max"], "pooling must be one of native, mean, embedding"),
    (["training.batch_size=0"], "training.batch_size must be at least 1"),
])
def test_impossible_combinations_are_rejected(overrides, message):
    with pytest.raises(RecipeError, match="invalid recipe") as e:
        recipes.load("sentiment-minilm", overrides)
    assert message in str(e.value)


def test_the_sections_registry_entries_own_are_checked_with_the_rest_in_one_error():
    with pytest.raises(RecipeError) as e:
        recipes.load("few-shot-minilm", ["training.epochs=0", "contrastive.iterations=0", "labels.temperature=0",
                                         "adapt.method=mlmce", "peft.dropout=1"])
    problems = str(e.value).splitlines()[1:]
    assert problems == [
        "  - training.epochs must be positive, got 0.0",
        "  - adapt.method must be one of mmd, mlm, mlm+ce, got 'mlmce' (did you mean 'mlm+ce'?)",
        "  - peft.dropout must be in [0, 1), got 1.0",
        "  - 'peft' settings are given but strategy is 'contrastive'; remove them or use lora/ia3/...",
        "  - labels.temperature must be positive, got 0.0",
        "  - contrastive.iterations must be at least 1 and contrastive.pairs at least 1, got 0 and 1280"]
    with pytest.raises(RecipeError, match="unknown key 'contrastive.iteration' \\(did you mean 'iterations'\\?\\); "
                                          "valid keys here: body, iterations, pairs, all_pairs, epochs, batch_size, lr"):
        recipes.load("few-shot-minilm", ["contrastive.iteration=3"])


def test_unknown_recipe_name_suggests_and_lists():
    with pytest.raises(RecipeError) as e:
        recipes.find("sentiment-minilmm")
    assert "did you mean 'sentiment-minilm'" in str(e.value)
    assert "sentiment3-minilm" in str(e.value)


def test_malformed_override():
    with pytest.raises(RecipeError, match="must look like key=value"):
        recipes.load("sentiment-minilm", ["training.lr"])


@pytest.mark.parametrize("strategy, expected", [("head", 1e-2), ("top_k", 1e-4), ("full", 5e-5), ("lora", 5e-4),
                                                ("ia3", 3e-3), ("adalora", 5e-4)])
def test_default_learning_rate_per_strategy_and_override(strategy, expected):
    from nlptransfer.recipe import from_dict
    from nlptransfer.strategies import learning_rate

    assert learning_rate(from_dict({"strategy": strategy})) == expected
    assert learning_rate(from_dict({"strategy": strategy, "training": {"lr": "2e-4"}})) == 2e-4


def test_a_learning_rate_far_from_the_strategys_own_is_named():
    from nlptransfer.recipe import from_dict
    from nlptransfer.strategies import learning_rate_warnings

    full_recipe_as_head = from_dict({"strategy": "head", "training": {"lr": 5e-5}})
    assert learning_rate_warnings(full_recipe_as_head) == [
        "training.lr 5e-05 is 200x below strategy head's usual 0.01; was the recipe written for another strategy? "
        "(training.lr=null takes the strategy's own)"]
    assert "25x above strategy full's usual 5e-05" in learning_rate_warnings(
        from_dict({"strategy": "full", "training": {"lr": 1.25e-3}}))[0]
    assert learning_rate_warnings(from_dict({"strategy": "full", "training": {"lr": 9e-4}})) == []  # 18x: no
    assert learning_rate_warnings(from_dict({"strategy": "head"})) == []  # no lr: the strategy's own
    # contrastive.lr is the body's: a full body's 4e-5 for an ia3 body (usual 3e-3) is named, for lora (5e-4) not
    few_shot = recipes.load("few-shot-minilm")
    assert learning_rate_warnings(few_shot.replace(**{"contrastive.body": "ia3"})) == [
        "contrastive.lr 4e-05 is 75x below strategy ia3's usual 0.003 for the body it trains (contrastive.body=ia3); "
        "set contrastive.lr for that body"]
    assert learning_rate_warnings(few_shot.replace(**{"contrastive.body": "lora"})) == []  # 12.5x
    assert learning_rate_warnings(few_shot.replace(**{"contrastive.body": "ia3", "contrastive.lr": 3e-3})) == []
    # with another strategy contrastive.* is not used: no word of it (and training.lr 1e-3 is 10x from head's: silent)
    assert learning_rate_warnings(few_shot.replace(strategy="head", **{"contrastive.body": "ia3"})) == []
    # adapt.lr is masked-LM pretraining's (the whole encoder trains): a head's 1e-2 is named; with mmd it is not used
    adapted = {"strategy": "full", "adapt": {"target": "texts.csv", "method": "mlm", "lr": 1e-2}}
    assert learning_rate_warnings(from_dict(adapted)) == [
        "adapt.lr 0.01 is 100x above the usual 0.0001 for masked-LM pretraining of the encoder (adapt.method=mlm: it "
        "trains the whole encoder, as full does)"]
    assert learning_rate_warnings(from_dict({**adapted, "adapt": {**adapted["adapt"], "lr": 5e-5}})) == []
    assert learning_rate_warnings(from_dict({**adapted, "adapt": {**adapted["adapt"], "method": "mmd"}})) == []


#: the top-level keys of a resolved recipe as saved before registry entries owned their sections
OLD_LAYOUT = ["name", "description", "model", "model_revision", "trust_remote_code", "task", "strategy", "top_k",
              "layer_lr_decay", "pooling", "data", "peft", "training", "evaluation", "output", "report", "adapt",
              "labels", "contrastive"]


@pytest.mark.parametrize("registered", [True, False])
def test_a_recipe_saved_before_the_sections_moved_still_reads(tmp_path, registered):
    import yaml

    r = recipes.load("few-shot-minilm", ["adapt.target=texts.csv", "adapt.method=mlm", "labels.temperature=0.1"])
    saved = r.to_dict()
    assert set(saved) == set(OLD_LAYOUT)  # the same keys: only their order in the YAML moved
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({key: saved[key] for key in OLD_LAYOUT}, sort_keys=False))
    again = recipes.read_saved(path, registered=registered)
    assert again == r
    assert (again.contrastive.pairs, again.adapt.method, again.labels.temperature, again.peft.r) == (1280, "mlm", 0.1, 8)
    # older still: saved before the labels and contrastive sections existed, they read as their defaults
    path.write_text(yaml.safe_dump({k: v for k, v in saved.items() if k not in ("labels", "contrastive")}))
    older = recipes.read_saved(path, registered=registered)
    assert older.contrastive == type(r.contrastive)() and older.labels.temperature == 0.05


def test_the_section_of_an_entry_not_registered_here_is_kept_unchecked_for_prediction_only(tmp_path):
    import yaml

    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**recipes.load("sentiment-minilm").to_dict(), "top_biases": {"layers": 2}}))
    assert recipes.read_saved(path, registered=False).top_biases == {"layers": 2}
    assert recipes.read_saved(path, registered=False).to_yaml().endswith("\ntop_biases:\n  layers: 2\n")  # kept
    with pytest.raises(RecipeError, match="unknown key 'top_biases'"):
        recipes.read_saved(path)
    path.write_text(yaml.safe_dump({**recipes.load("sentiment-minilm").to_dict(), "top_biases": 2}))
    with pytest.raises(RecipeError, match="unknown key 'top_biases'"):  # a section is a mapping; anything else is wrong
        recipes.read_saved(path, registered=False)


# -- YAML is read bounded, and messages quote values cut ---------------------------------------------------------------

def _alias_bomb(levels: int) -> str:
    """A few hundred bytes of YAML under data.label_map that repeat 9 "lol"s 9**levels times once aliases expand."""
    anchors = ['    a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    anchors += [f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "data:\n  label_map:\n" + "\n".join(anchors) + "\n"


def test_a_yaml_alias_bomb_is_refused_while_read_in_little_time_and_memory(tmp_path):
    import time
    import tracemalloc

    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(6))  # 531,441 "lol"s written out; 9 levels would be 387 million
    assert len(path.read_bytes()) < 500
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(RecipeError) as e:
        recipes.load(str(path))
    seconds, (_, peak) = time.perf_counter() - started, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seconds < 2 and peak < 20 * 2 ** 20, (seconds, peak)
    assert str(e.value) == (f"{path} is over 1,000,000 characters written out with its aliases (*name) repeated; a "
                            "recipe needs far fewer: refused (an alias bomb?)")


@pytest.mark.parametrize("override, message", [
    ("data.label_map=[&a [x, x, x, x, x, x, x, x, x, x], &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a], "
     "&c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b], &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c], "
     "&e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d], [*e, *e, *e, *e, *e]]",
     "override 'data.label_map' is over 1,000,000 characters written out with its aliases (*name) repeated"),
    ("data.label_map=&a [x, *a]", "override 'data.label_map' has an alias (*name) inside the value it repeats"),
    ("training.lr=" + "[" * 5000, "override 'training.lr' nests values more than 32 levels deep"),
], ids=["bomb", "cycle", "deep"])
def test_an_override_is_read_bounded_too(override, message, capsys):
    from nlptransfer.cli import main

    assert main(["recipes", "validate", "sentiment-minilm", override]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and len(err) < 300 and "Traceback" not in err, err[:2000]


def test_a_number_python_refuses_is_a_recipe_error_not_a_traceback(tmp_path):
    with pytest.raises(RecipeError, match=r"'training.epochs' must be float, got '1111.*'\.\.\. \(5,000 characters\)"):
        recipes.load("sentiment-minilm", ["training.epochs=" + "1" * 5000])  # read as text, then refused as a number
    (tmp_path / "r.yaml").write_text("training:\n  epochs: " + "1" * 5000 + "\n")
    with pytest.raises(RecipeError, match="r.yaml is not valid YAML: Exceeds the limit"):
        recipes.load(str(tmp_path / "r.yaml"))


def test_a_recipe_file_that_is_not_utf8_text_or_too_large_is_one_recipe_error(tmp_path):
    import gzip

    packed = tmp_path / "data.csv"
    packed.write_bytes(gzip.compress(b"text,label\ngood,pos\n"))  # a data file given where the recipe goes
    with pytest.raises(RecipeError, match=r"data.csv is not a recipe: it is not UTF-8 text \(byte 1\)"):
        recipes.load(str(packed))
    huge = tmp_path / "huge.yaml"
    huge.write_text("name: " + "x" * 1_000_001)
    with pytest.raises(RecipeError, match=r"huge.yaml is 1,000,007 bytes: a recipe is a YAML file of at most 1,000,000"):
        recipes.load(str(huge))
    run = tmp_path / "recipe.yaml"
    run.write_bytes(b"name: \xff\n")
    with pytest.raises(RunError, match=r"recipe.yaml is not a recipe: it is not UTF-8 text \(byte 6\)"):
        recipes.read_saved(run)


LONG = "x" * 120_000
CUT = "'" + "x" * 80 + "'... (120,000 characters)"


@pytest.mark.parametrize("override, message", [
    (f"training.metric={LONG}", f"training.metric must be one of accuracy, macro_f1, micro_f1, got {CUT}"),
    (f"task={LONG}", f"task must be one of classification, sentiment, multi_label, got {CUT}"),
    (f"strategy={LONG}", f"unknown strategy {CUT}; valid: lora"),
    (f"adapt.method={LONG}", f"adapt.method must be one of mmd, mlm, mlm+ce, got {CUT}"),
    (f"name={LONG[1:]}/", f"name {CUT} must be a plain folder name"),
    (f"training.epochs=[{LONG}]", f"'training.epochs' must be float, got ['{'x' * 17}...{'x' * 18}'] (1 item)"),
    (f"{LONG}=1", f"unknown key {CUT}; valid keys here"),
    (LONG, f"override {CUT} must look like key=value"),
], ids=["metric", "task", "strategy", "adapt.method", "name", "nested", "key", "override"])
def test_a_long_value_is_quoted_cut_in_every_message(override, message):
    with pytest.raises(RecipeError) as e:
        recipes.load("sentiment-minilm", [override])
    assert message in str(e.value) and len(str(e.value)) < 1000, str(e.value)[:2000]


def test_quoted_shows_the_start_and_size_of_a_long_or_nested_value():
    from nlptransfer.errors import quoted

    assert quoted("lr") == "'lr'" and quoted(0.5) == "0.5" and quoted(["a", "b"]) == "['a', 'b']"
    assert quoted("y" * 81) == "'" + "y" * 80 + "'... (81 characters)"
    nested = [[["z"] * 9] * 9] * 9  # shared, as YAML aliases build it: quoting never expands it
    assert quoted(nested) == ("[[[...], [...], [...], [...], ...], [[...], [...], [...], [...], ...], [[...], [... "
                              "(9 items)")


def test_a_recipe_lists_at_most_30_problems():
    with pytest.raises(RecipeError) as e:
        recipes.load("sentiment-minilm", [f"data.label_map={{{', '.join(f'k{i}: [1]' for i in range(100))}}}"])
    lines = str(e.value).splitlines()
    assert len(lines) == 32 and lines[-1] == "  - ... and 70 more", lines[-3:]
