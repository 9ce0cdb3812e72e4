"""LightningCLI for BioNIC: configs are the interface; every run owns one directory (bionic.runs).

From command to files: the config is parsed (bionic/recipe.yaml first, then each --config);
the run directory (trainer.default_root_dir) is checked, and for `fit` its identity compared with
the one recorded there; the Trainer gets bionic.runs.run_callbacks (checkpoints, history,
metrics.json) and, for `predict`, bionic.predict.PredictionWriter; then the subcommand runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lightning.pytorch.cli import LightningCLI

from bionic.errors import BionicError
from bionic.run_files import BEST, CONFIG, LAST
from bionic.runs import (check_checkpoint_fits, check_run_dir, identity, read_checkpoint, recorded_identity,
                         refuse_other_config, run_callbacks)
from bionic.wandb_run import WandbSettings, finish_wandb, wandb_logger

RECIPE = Path(__file__).with_name("recipe.yaml")
SUBCOMMANDS = ("fit", "validate", "test", "predict")


class BionicCLI(LightningCLI):
    def __init__(self, *args, run: bool = True, **kwargs):
        # Parse errors are raised, not printed with the usage, so run_cli can say them in one line.
        recipe = {"default_config_files": [str(RECIPE)], "exit_on_error": False}
        kwargs.setdefault("parser_kwargs", {"exit_on_error": False, **{sub: recipe for sub in SUBCOMMANDS}}
                          if run else recipe)
        self.run_dir: Path | None = None
        self.config_dict: dict = {}
        self.ident: dict | None = None
        self._checkpoint: tuple[str, dict] | None = None  # (path, contents) once read
        super().__init__(*args, run=run, **kwargs)

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        # LightningCLI reads a --ckpt_path's hyperparameters right after parsing: a file that is
        # missing, truncated or not a checkpoint is said in one line first.
        sub = self.config.get("subcommand")
        path = self.config[sub].get("ckpt_path") if sub else None
        if path is not None:
            self._checkpoint = (path, read_checkpoint(path))

    def _parse_ckpt_path(self) -> None:
        # LightningCLI lays the checkpoint's hyperparameters over the parsed config, test_flip among
        # them (False, as saved by fit), which would silently drop `--model.test_flip true` next to a
        # --ckpt_path. test_flip only says how `test` scores, not what the model is: the command
        # line's value stands.
        sub = self.config.get("subcommand")
        flip = self.config[sub]["model"].get("test_flip") if sub else None
        super()._parse_ckpt_path()
        if flip is not None:
            self.config[sub]["model"]["test_flip"] = flip

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_class_arguments(WandbSettings, "wandb")

    def _cfg(self):
        return self.config[self.subcommand] if self.subcommand else self.config

    def _cfg_init(self):
        return self.config_init[self.subcommand] if self.subcommand else self.config_init

    # -- before anything is built: the run directory ------------------------------------------
    def before_instantiate_classes(self) -> None:
        self.run_dir = Path(self._cfg()["trainer"]["default_root_dir"] or "runs/default")
        dumped = json.loads(self.parser.dump(self.config, format="json", skip_check=True))
        self.config_dict = dumped[self.subcommand] if self.subcommand else dumped  # as config.yaml records it
        fit = self.subcommand == "fit"
        if not fit:
            self.save_config_callback = None  # only fit owns config.yaml; the others read it
        check_run_dir(self.run_dir, create=False)
        if self.subcommand is None:  # run=False: built, not run
            return
        self.ident = identity(self.config_dict)
        refuse_other_config(self.run_dir, self.ident, self._recorded_identity(), scoring=not fit)
        if fit:
            check_run_dir(self.run_dir, create=True)

    def _recorded_identity(self) -> dict | None:
        recorded = recorded_identity(self.run_dir)
        old_config = self.run_dir / CONFIG
        if recorded is None and old_config.is_file():
            # A folder fitted before identity.json existed: its config.yaml says what it holds.
            try:
                recorded = identity(json.loads(self.parser.dump(
                    self.parser.parse_args(["fit", "--config", str(old_config)]), format="json"))["fit"])
            except (SystemExit, Exception):
                raise BionicError(f"{self.run_dir} holds a run whose config.yaml no longer parses; pass another "
                                  f"--trainer.default_root_dir, or delete {self.run_dir} to start over") from None
        return recorded

    def instantiate_trainer(self, **kwargs):
        trainer = self._cfg_init()["trainer"]
        callbacks = list(trainer.get("callbacks") or [])
        callbacks += run_callbacks(self.run_dir, self.config_dict, self.ident,
                                   checkpoints=trainer.get("enable_checkpointing") is not False)
        if self.subcommand == "predict":
            from bionic.predict import PredictionWriter

            callbacks.append(PredictionWriter(self.run_dir))
        logger = trainer.get("logger")
        if logger in (None, True):
            logger = wandb_logger(self._cfg()["wandb"], self.run_dir) if self.subcommand in ("fit", "test") else False
        kwargs = {"default_root_dir": str(self.run_dir), "callbacks": callbacks, "logger": logger, **kwargs}
        return super().instantiate_trainer(**kwargs)

    # -- subcommand hooks --------------------------------------------------------------------
    def before_fit(self) -> None:
        last = self.run_dir / LAST
        ckpt = self.config_init["fit"].get("ckpt_path")
        if ckpt is None and last.is_file():
            print(f"resuming from {last} (delete {self.run_dir} to start over)", file=sys.stderr)
            ckpt = self.config_init["fit"]["ckpt_path"] = str(last)
        if ckpt is not None:
            self._check_fits(ckpt)

    def after_fit(self) -> None:
        finish_wandb(self.trainer.logger)

    def _trained_checkpoint(self) -> None:
        """validate / test / predict score trained weights: --ckpt_path, else the run's best.ckpt
        (last.ckpt when the fit had no validation to choose a best by). Never the untrained model."""
        sub = self.subcommand
        ckpt = self.config_init[sub].get("ckpt_path")
        if ckpt is None:
            best, last = self.run_dir / BEST, self.run_dir / LAST
            if best.is_file():
                ckpt = best
            elif last.is_file():
                ckpt = last
            else:
                raise BionicError(f"no checkpoint to {sub}: pass --ckpt_path, or fit first so {best} exists")
            print(f"{sub}: using {ckpt} (--ckpt_path chooses another)", file=sys.stderr)
        self._check_fits(ckpt)
        self.config_init[sub]["ckpt_path"] = str(ckpt)

    def _check_fits(self, path) -> None:
        read = self._checkpoint if self._checkpoint and self._checkpoint[0] == str(path) else None
        check_checkpoint_fits(read[1] if read else read_checkpoint(path), path, self.model)

    before_validate = before_test = before_predict = _trained_checkpoint

    def after_test(self) -> None:
        finish_wandb(self.trainer.logger)


def check_config_files(argv: list[str]) -> None:
    """Each --config file exists and is YAML; the parser's own message would not name the file."""
    import yaml

    paths = [b for a, b in zip(argv, argv[1:]) if a == "--config"] + [a[9:] for a in argv if a.startswith("--config=")]
    for path in map(Path, paths):
        if not path.exists():
            if path.suffix in (".yaml", ".yml"):
                raise BionicError(f"no config file {path}")
            continue  # jsonargparse also takes a YAML string in place of a file
        try:
            yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise BionicError(f"cannot read the config file {path} ({exc}); pass a YAML file") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "not valid YAML"
            raise BionicError(f"{path} is not valid YAML{where}: {problem}; fix the file") from None


def run_cli(argv: list[str] | None = None) -> None:
    from jsonargparse import ArgumentError
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from bionic.data import FER2013DataModule
    from bionic.modules import EmotionClassifier

    try:
        check_config_files(list(sys.argv[1:] if argv is None else argv))
        # args only when they are not the command line itself, which LightningCLI would warn about
        args = None if argv is None or list(argv) == sys.argv[1:] else argv
        BionicCLI(EmotionClassifier, FER2013DataModule, args=args, save_config_kwargs={"overwrite": True})
    except ArgumentError as exc:
        sub = next((a for a in (argv or sys.argv[1:]) if a in SUBCOMMANDS), None)
        hint = f"python -m bionic {sub} --help" if sub else "python -m bionic --help"
        print(f"error: {' '.join(str(exc).split())} ({hint} lists the options)", file=sys.stderr)
        sys.exit(2)
    except BionicError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except SIGTERMException:
        # Lightning stops the loop on SIGTERM (a cluster's preemption, a `kill`) with a bare
        # SystemExit, i.e. exit status 0: a job script or the ablation matrix would take the
        # unfinished fit for a finished one and test its partial checkpoint. 128 + 15 says it.
        print("error: stopped by SIGTERM before the command finished; run the same command again to resume "
              "from checkpoints/last.ckpt", file=sys.stderr)
        sys.exit(143)
