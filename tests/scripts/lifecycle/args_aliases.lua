-- Prints luna.args and whether require("lbus") and require("luna") are luna.
print("args", luna.args[0]:match("args_aliases%.lua$") ~= nil, luna.args[1], luna.args[2], #luna.args)
print("aliases", require("lbus") == luna, require("luna") == luna)
luna_quit_flag = true
