"""The module path `python -m jaxdl.train` had before the apps moved to `jaxdl/apps/`; kept so recorded commands run."""

from jaxdl.apps.train import main

if __name__ == "__main__":
    main()
