"""jaxdl's submitit launchers, where Hydra looks for launchers (only the `hydra_plugins` package).

`hydra/launcher=slurm` and `hydra/launcher=local` name these; the behaviour is in `jaxdl.apps.launchers`.
Without the `slurm` extra (hydra-submitit-launcher) there is nothing to define, and Hydra, which imports
every plugin at start-up, must not warn about it.
"""

try:
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher
except ImportError:  # pip install 'jaxdl[slurm]' brings it
    submitit_launcher = None

if submitit_launcher is not None:
    from jaxdl.apps.launchers import SlurmQueue, SweepSurvivesFailedJobs

    class SlurmLauncher(SlurmQueue, submitit_launcher.SlurmLauncher):
        """One SLURM job per sweep point; a job that dies is recorded `failed` and the sweep goes on."""

    class LocalLauncher(SweepSurvivesFailedJobs, submitit_launcher.LocalLauncher):
        """One local process per sweep point; a job that dies is recorded `failed` and the sweep goes on."""
