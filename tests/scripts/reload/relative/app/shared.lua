-- Found next to the entry (relative/app/main.lua): wins over ../shared.lua.
where = 'entry dir'
