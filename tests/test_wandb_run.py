"""The run's W&B logger opens its run in the background: what is logged before the run is open
reaches it in order, and a run that cannot open does not stop the training."""

from __future__ import annotations

import threading

import pytest
from lightning.pytorch.loggers import WandbLogger

from bionic.wandb_run import BackgroundWandbLogger


class FakeRun:
    """What WandbLogger uses of a wandb Run: `config.update` and `log`."""

    def __init__(self, sent: list):
        self.sent = sent
        self.config = self
        self.id = "fake"

    def update(self, params, allow_val_change=False):
        self.sent.append(("config", dict(params)))

    def log(self, row):
        self.sent.append(("log", dict(row)))


@pytest.fixture
def slow_wandb(monkeypatch):
    """WandbLogger.experiment replaced by a run that opens only when the test says so."""
    opening, sent = threading.Event(), []

    def experiment(self):
        if self._experiment is None:
            if not opening.wait(10):
                raise TimeoutError("the test never opened the run")
            if getattr(self, "fail", False):
                raise ConnectionError("no wandb-core")
            self._experiment = FakeRun(sent)
        return self._experiment

    monkeypatch.setattr(WandbLogger, "experiment", property(experiment))
    return opening, sent


def test_logged_before_the_run_opens_arrives_in_order(slow_wandb):
    opening, sent = slow_wandb
    logger = BackgroundWandbLogger(project="p", save_dir=".", offline=True)
    logger.log_hyperparams({"lr": 0.003})
    logger.log_metrics({"train/loss": 1.9}, step=9)
    assert sent == [] and not logger.is_open, "nothing waits for W&B: it is queued"
    opening.set()
    logger._opener.join()
    logger.log_metrics({"train/loss": 1.7}, step=19)
    assert sent == [("config", {"lr": 0.003}),
                    ("log", {"train/loss": 1.9, "trainer/global_step": 9}),
                    ("log", {"train/loss": 1.7, "trainer/global_step": 19})]


def test_finalize_sends_what_is_queued(slow_wandb):
    opening, sent = slow_wandb
    logger = BackgroundWandbLogger(project="p", save_dir=".", offline=True)
    logger.log_metrics({"val/acc": 0.5}, step=3)
    threading.Timer(0.2, opening.set).start()
    logger.finalize("success")  # waits for the run to open
    assert sent == [("log", {"val/acc": 0.5, "trainer/global_step": 3})]


def test_a_run_that_cannot_open_warns_once_and_training_goes_on(slow_wandb, capsys):
    opening, sent = slow_wandb
    BackgroundWandbLogger.fail = True
    try:
        logger = BackgroundWandbLogger(project="p", save_dir=".", offline=True)
        logger.log_hyperparams({"lr": 0.003})
        opening.set()
        logger._opener.join()
        logger.experiment  # what Lightning's setup does: no retry, no error
        logger.log_metrics({"train/loss": 1.9}, step=9)
        logger.finalize("success")
    finally:
        del BackgroundWandbLogger.fail
    err = capsys.readouterr().err.strip().splitlines()
    assert sent == [] and len(err) == 1, err
    assert "W&B could not start a run (ConnectionError: no wandb-core)" in err[0] and "goes on without W&B" in err[0]


def test_touching_experiment_at_setup_does_not_wait_but_using_it_does(slow_wandb):
    """Lightning's setup reads `logger.experiment` only to start the run: that must not wait for
    W&B; reading an attribute of the run does."""
    opening, sent = slow_wandb
    logger = BackgroundWandbLogger(project="p", save_dir=".", offline=True)
    stand_in = logger.experiment
    assert not logger.is_open, "reading `experiment` waited for the run"
    threading.Timer(0.2, opening.set).start()
    assert stand_in.id == "fake" and logger.is_open
    assert isinstance(logger.experiment, FakeRun)


def test_pickled_for_a_spawned_process_it_sends_the_queue_and_attaches_to_the_same_run(slow_wandb, monkeypatch):
    """Lightning pickles the logger for spawned processes: what was queued is sent first, and the
    copy knows the run's id (so it attaches to it) without the opener thread or the lock."""
    import pickle

    import wandb

    monkeypatch.setattr(wandb, "require", lambda *a, **k: None)  # Lightning's attach hint for wandb-core
    opening, sent = slow_wandb
    logger = BackgroundWandbLogger(project="p", save_dir=".", offline=True)
    logger.log_metrics({"train/loss": 1.9}, step=9)
    threading.Timer(0.2, opening.set).start()
    FakeRun.name = "fake-name"
    try:
        copy = pickle.loads(pickle.dumps(logger))
    finally:
        del FakeRun.name
    assert sent == [("log", {"train/loss": 1.9, "trainer/global_step": 9})], "the queue was not sent before pickling"
    assert copy._id == "fake" and copy._experiment is None and copy.is_open and copy._queue == []
    copy._experiment = FakeRun(sent)  # in the spawned process wandb attaches to run `_id`
    copy.log_metrics({"train/loss": 1.7}, step=19)
    assert sent[-1] == ("log", {"train/loss": 1.7, "trainer/global_step": 19})
