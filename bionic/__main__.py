"""Entry point: `python -m bionic {fit,validate,test,predict,connectome,ablations,report,keep,rescore,bench}`."""

import sys

# Subcommands outside LightningCLI, each a module with `main(argv)`; imported lazily so
# `python -m bionic connectome stats` does not pay for importing Lightning.
TOOLS = {
    "connectome": "bionic.connectome.cli",
    "ablations": "bionic.ablations",
    "sweep-agent": "bionic.ablations",
    "report": "bionic.report",
    "keep": "bionic.keep",
    "rescore": "bionic.rescore",
    "bench": "bionic.bench",
}


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        # LightningCLI's help lists only its own subcommands; name the project's tools above it.
        print(f"bionic's own tools, each with its --help: {', '.join(TOOLS)}\n"
              f"LightningCLI's subcommands (fit, validate, test, predict):\n")
    if argv and argv[0] in TOOLS:
        import importlib

        module = importlib.import_module(TOOLS[argv[0]])
        sys.exit(module.main(argv if argv[0] == "sweep-agent" else argv[1:]) or 0)
    from bionic.cli import run_cli

    run_cli(argv)


if __name__ == "__main__":
    main()
