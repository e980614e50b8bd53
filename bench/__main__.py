import sys

from bench import status_plane

if __name__ == "__main__":
    sys.exit(status_plane.main(sys.argv[1:]))
