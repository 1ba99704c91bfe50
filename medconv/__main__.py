"""python -m medconv: the same as the medconv command."""
from .cli import main

if __name__ == "__main__":
    main()
