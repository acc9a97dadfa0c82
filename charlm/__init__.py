"""charlm: character- and word-level recurrent language models on a pure NumPy core."""

from .training.mpienv import pin_blas_threads  # noqa: I001  (first: before NumPy loads)

pin_blas_threads()   # under mpiexec: one BLAS thread per rank, set before NumPy is imported

from .errors import CharlmError, ConfigError, CorpusError, ModelFileError, TrainingDiverged  # noqa: E402, I001

from .version import __version__  # noqa: E402

__all__ = ["CharlmError", "ConfigError", "CorpusError", "ModelFileError", "TrainingDiverged",
           "__version__"]

from .api import LanguageModel, load_model, train  # noqa: E402

__all__ += ["LanguageModel", "load_model", "train"]
