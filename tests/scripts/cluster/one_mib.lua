-- Sends 1 MiB of every byte value to 2.1 and back: `intact <same> <size> <from>`.
local blob = {}
for i = 1, 1024 * 1024 do blob[i] = string.char((i * 7) % 256) end
blob = table.concat(blob)
on_reply = function(msg, tag, who) print("intact", tag == blob, #tag, who) end
when_ready(function() node.forward_target("2.1", "echo", node.id, blob) end)
