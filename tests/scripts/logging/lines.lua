-- Logs a few lines (with the name given as the first argument, if any) and quits.
function on_start(name)
    if name then luna.log.set_name(name) end
    luna.log.info("hello from the log test")
    luna.log.warn('a "quoted" line\twith a tab\nand a second line')
    luna.log.debug("hidden debug line")
    luna.log.error("an error line")
    luna_quit_flag = true
end
