-- Prints a line when run: `luna --check` must not run it.
print('must not run')
