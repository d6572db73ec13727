"""rmtension: alignment tension (helpfulness vs harmlessness) inside reward models.

The package follows the study stage by stage: ``data`` → ``models`` → ``training`` →
``evaluation`` → ``neurons`` → ``ablation`` → ``analysis`` → ``report``, with ``study``
driving a whole grid and ``cli`` a thin command line on top.
"""

__version__ = "0.1.0"
