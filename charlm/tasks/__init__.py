"""The tasks the one trainer trains (:mod:`charlm.training.trainer`): the language model, the
tagger and the classifier. Each task module supplies its data reading (from text already read
from files), its head and loss, and its validation metric; the run set-up
(:mod:`charlm.training.runs`) and the trainer do the rest for every task alike.

A task module offers, under the same names::

    DEFAULTS                                 this task's own defaults (over the configs')
    complete(options, given) -> options      the defaults made to fit the options given
    OPTIONS                                  options that apply to this task only
    check(mcfg, tcfg)                        refuse options this task cannot take
    default_corpus() -> (files, valid)       the bundled data used when none is given
    DEFAULT_NOTICE                           what to say when it is used
    read_data(sources, cfg, known=None)      the data: vocabulary, labels, ids (``known``:
                                             the vocabulary and labels of a saved model)
    same_data(model, data) -> bool           a saved model and these data agree (--resume)
    create_model(config, data, rng, lms)     a new model for the data
    make_task(data, cfg, model, reducer)     the trainer's task object (see sentences.py)

The task object also tells the progress display what it shows: ``unit`` (what counts and
losses are per: token or example), ``samples`` (a sample at each evaluation),
``metric`` (``valid_loss`` when the loss itself is the figure) and ``epoch_line(cfg, labels,
tokens, windows)`` (what an epoch is, said at the start).
"""

from . import classify, lm, tag

TASKS = {"lm": lm, "tag": tag, "classify": classify}
