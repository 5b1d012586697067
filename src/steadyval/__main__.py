"""``python -m steadyval``: the same as the ``steadyval`` command."""

from steadyval.cli import main

if __name__ == "__main__":
    main()
