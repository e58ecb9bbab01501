-- Only in the current directory: found there.
where = 'cwd only'
