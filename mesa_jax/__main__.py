"""``python -m mesa_jax run SCRIPT [ARGS...]`` and ``python -m mesa_jax compare``."""

from .cli import main

if __name__ == "__main__":
    main()
