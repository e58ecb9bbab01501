-- Counts its loads; its globals stay in its own environment.
loads = (loads or 0) + 1
secret = 'mine'
function get() return loads end
