-- In the current directory: loses to app/shared.lua.
where = 'cwd'
