"""python -m medconv: the same as the medconv command."""
from .entry import main

if __name__ == "__main__":
    main()
