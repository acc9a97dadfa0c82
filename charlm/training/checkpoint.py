"""The model file: one ``.npz`` holding everything a model and its training run need.

Contents (all plain arrays; loading never unpickles anything):

- ``param/<name>``: the model's parameters (the best on validation, when training validates);
- ``train/param/<name>``, ``train/optim/<slot>/<name>``, ``train/state/<layer>/<a|c>``: the
  latest parameters, optimizer state and carried hidden state of the run, for ``--resume``;
- ``lm/<i>/param/<name>``: a tagger's frozen feature language models (see
  :mod:`charlm.nn.charwords`; their configs, vocabularies and its character vocabulary are in
  the meta entry's ``features``);
- ``meta``: one JSON string with the format version, the model config, the vocabulary and the
  training state (step, epoch, data position, random generator state, best validation loss,
  loss history, …).

Files are written atomically: to a temporary file in the same directory, flushed to disk, then
renamed over the destination, so a crash at any moment leaves the old file or the new one.

One model file ships inside the package: the starter model (``charlm/models/starter.npz``), a
character LSTM of general English prose. Everything that opens a model file by path also
takes the name ``starter`` for it (:func:`locate`), unless a file of that name exists.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ModelFileError
from ..nn.cells import CELLS
from ..nn.charwords import WordFeatures, char_config
from ..nn.encoder import directions, out_size, prefix
from ..nn.model import Model, ModelConfig, input_size
from ..text.vocab import Vocab

FORMAT = "charlm-model"
FORMAT_VERSION = 1
_AGAIN = "Check the path, or train a new model with `charlm train`."
STARTER = "starter"   # the name of the bundled starter model


def starter_path() -> Path:
    """Where the bundled starter model lies: package data of the installed charlm (in a
    checkout, the same file under charlm/models/)."""
    return Path(__file__).resolve().parents[1] / "models" / "starter.npz"


def locate(path: str | Path) -> Path:
    """The model file ``path`` names: the bundled starter model for the name ``starter``
    (when no file of that name exists), otherwise ``path`` itself."""
    path = Path(path)
    if str(path) == STARTER and not path.exists():
        return starter_path()
    return path


def save(path: str | Path, model: Model, meta_train: dict | None = None,
         extra: dict[str, np.ndarray] | None = None) -> None:
    """Write ``model`` (and optionally a training state) to ``path`` atomically."""
    path = Path(path)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "config": model.config.to_json(), "vocab": model.vocab.to_json(),
            "train": meta_train}
    if model.labels is not None:   # a tagger's or classifier's outputs, in W_y's row order
        meta["labels"] = list(model.labels)
    arrays = {f"param/{k}": v for k, v in model.params.items()}
    if model.features is not None:   # a tagger's characters and LMs: one file to ship
        meta["features"] = model.features.meta()
        arrays.update(model.features.arrays())
    arrays.update(extra or {})
    arrays["meta"] = np.array(json.dumps(meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a model file is an ordinary file
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):  # disk full, I/O error, ...: the old file is still whole
            raise ModelFileError(f"Could not write the model file {path} ({e.strerror or e}). "
                                 "Free some disk space or choose another --out; any earlier "
                                 "file there is unchanged.") from e
        raise


def read(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The meta dict and every array of a model file, checked to be a charlm model
    (``starter``: the bundled starter model)."""
    path = locate(path)
    if not path.exists():
        if path == starter_path():
            raise ModelFileError("The starter model is missing from this installation of "
                                 "charlm. Reinstall charlm, or give a model file.")
        raise ModelFileError(f"No model file at {path}. Check the path.")
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not a model file. Give the path of a "
                             ".npz file written by `charlm train`.")
    if not zipfile.is_zipfile(path):  # empty, truncated, random bytes, .npy, a pickle, ...
        raise ModelFileError(f"{path} is not a charlm model file, or it is damaged (not a "
                             f"complete .npz archive). {_AGAIN}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:  # an object array would need pickle: refused, never unpickled
        if "pickle" in str(e):
            raise ModelFileError(f"{path} holds pickled Python objects, which charlm never "
                                 "loads (they could run code). Use a model file charlm "
                                 "wrote.") from e
        raise ModelFileError(f"{path} is damaged ({e}). {_AGAIN}") from e
    except Exception as e:  # a damaged archive fails in many ways (CRC, headers, sizes, ...)
        raise ModelFileError(f"{path} is not a charlm model file or is damaged "
                             f"({type(e).__name__}: {e}). {_AGAIN}") from e
    if "meta" not in arrays or arrays["meta"].dtype.kind != "U":
        raise ModelFileError(f"{path} is an .npz file but not a charlm model (no meta entry). "
                             "Give a model file written by `charlm train`.")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{path} has a damaged meta entry ({e}). {_AGAIN}") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is an .npz file but not a charlm model. Give a model "
                             "file written by `charlm train`.")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path} has an invalid model format version ({version!r}). "
                             f"{_AGAIN}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} has model format version {version}, newer than this "
                             f"charlm understands ({FORMAT_VERSION}). Upgrade charlm.")
    return meta, arrays


def load(path: str | Path) -> tuple[Model, dict, dict[str, np.ndarray]]:
    """Load a model file: (model with its best parameters, training meta, the other arrays).
    Parameters stored in another float type (the starter model's float16) come back in the
    config's dtype."""
    path = locate(path)
    meta, arrays = read(path)
    try:
        config = ModelConfig.from_json(meta["config"])
        config.validate()
        vocab = Vocab.from_json(meta["vocab"])
        labels = meta.get("labels")
        if config.task != "lm" and (not isinstance(labels, list) or len(labels) < 2
                                    or not all(isinstance(t, str) for t in labels)):
            raise TypeError(f"a {config.task} model needs a list of at least two labels")
        if config.task == "lm":
            labels = None
        if not isinstance(meta.get("train") or {}, dict):
            raise TypeError("the training state is not a JSON object")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelFileError(f"{path} has a damaged config or vocabulary ({e}). "
                             f"{_AGAIN}") from e
    except Exception as e:  # ConfigError from validate: the file, not the user, is wrong
        raise ModelFileError(f"{path} has an invalid config: {e} {_AGAIN}") from e
    params = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    features = None
    if config.char_hidden or config.lm_features:
        try:
            features = features_from_file(path, meta["features"], arrays)
            if (features.chars is None) != (not config.char_hidden) \
                    or features.lm_size != config.lm_features:
                raise ValueError("they do not match the config")
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ModelFileError(f"{path} has damaged character or LM features ({e}). "
                                 f"{_AGAIN}") from e
    check_arrays(path, params, _expected_shapes(config, vocab, labels, features))
    model = Model(config, vocab, {k: v.astype(config.dtype, copy=False) for k, v in params.items()},
                  labels, features)
    rest = {k: v for k, v in arrays.items() if not k.startswith("param/")}
    return model, meta.get("train") or {}, rest


def _expected_shapes(config: ModelConfig, vocab: Vocab, labels: list | None = None,
                     features=None) -> dict[str, tuple]:
    """Parameter shapes for a config (any task), without allocating the parameters."""
    V, H, D = len(vocab), config.hidden, out_size(config)
    K = V if labels is None else len(labels)
    shapes: dict[str, tuple] = {}
    if config.embed:
        shapes["E"] = (V, config.embed)
    n_x = input_size(config, V)
    probe = np.random.default_rng(0)
    for l in range(1, config.layers + 1):
        # the cells know their own layouts: a probe of width 1 shows the number of gate blocks
        for k, v in CELLS[config.cell].init_params(1, 1, probe, np.float32,
                                                   **config.cell_opts).items():
            rows = v.shape[0]
            for rev in directions(config):
                name = prefix(l, rev) + k
                if v.ndim == 1:
                    shapes[name] = (rows * H,)
                elif k == "W_ax":
                    shapes[name] = (rows * H, n_x)
                else:
                    shapes[name] = (rows * H, H)
        n_x = D
    if not config.tie_weights:   # tied: W_y is E, stored once
        shapes["W_y"] = (K, D)
    shapes["b_y"] = (K,)
    if config.char_hidden:   # the character BRNN: one bidirectional layer over characters
        inner = _expected_shapes(char_config(config), features.chars, ["", ""])
        shapes.update({"C." + k: v for k, v in inner.items() if k not in ("W_y", "b_y")})
    return shapes


def check_arrays(path, params: dict[str, np.ndarray], expected: dict[str, tuple]) -> None:
    missing = sorted(set(expected) - set(params))
    if missing:
        raise ModelFileError(f"{path} lacks parameters {', '.join(missing)}: the file is "
                             f"damaged or from another program. {_AGAIN}")
    for k, shape in expected.items():
        a = params[k]
        if a.shape != tuple(shape) or a.dtype.kind != "f":
            raise ModelFileError(f"{path}: parameter {k} has shape {a.shape} ({a.dtype}), "
                                 f"expected {tuple(shape)} floats. The file is damaged. {_AGAIN}")
        if not np.all(np.isfinite(a)):
            raise ModelFileError(f"{path}: parameter {k} holds NaN or infinite values. "
                                 f"{_AGAIN}")


def features_from_file(path, meta: dict, arrays: dict) -> WordFeatures:
    """A tagger's WordFeatures from its model file: the character vocabulary and the frozen
    LMs stored under ``lm/<i>/param/``."""
    chars = Vocab.from_json(meta["chars"]) if meta.get("chars") else None
    lms = []
    for i, d in enumerate(meta.get("lms") or []):
        cfg, vocab = ModelConfig.from_json(d["config"]), Vocab.from_json(d["vocab"])
        cfg.validate()
        p = f"lm/{i}/param/"
        params = {k[len(p):]: v for k, v in arrays.items() if k.startswith(p)}
        check_arrays(path, params, _expected_shapes(cfg, vocab))
        lms.append((Model(cfg, vocab, params), bool(d["reverse"])))
    return WordFeatures(chars, lms)


def load_lm(path) -> tuple:
    """A feature LM from its model file: (Model, reverse). Only char-level language models."""
    model, meta, _ = load(path)
    if model.config.task != "lm" or model.vocab.level != "char":
        raise ConfigError(f"{path} is not a character language model (it is a "
                          f"{model.vocab.level}-level {model.config.task} model). "
                          "--lm-features takes models trained with `charlm train` at "
                          "--level char.")
    return model, bool((meta.get("config") or {}).get("reverse", False))
