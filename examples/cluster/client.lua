-- A client: mails by hash, logs in through a random game (RPC that calls
-- the mail service), joins a match through the master, announces to all
-- games by broadcast. Runs forever, or N rounds: luna client.lua 10.1 [N].
local config = import("config.lua")

local rounds = tonumber(luna.args[2])
local accounts = { "alice", "bob", "carol" }
local round = 0

local function play()
    round = round + 1
    local account = accounts[(round - 1) % #accounts + 1]
    node.forward_hash(config.MAIL, account, "send_mail", account, "client", "hello #" .. round)
    luna.sleep(50) -- one-way messages carry no answer: give the mail a moment to land
    local welcome, unread = node.call_random(config.GAME, "login", account)
    print("login: " .. tostring(welcome) .. " (" .. tostring(unread) .. " unread)")
    local result, by = node.call_master(config.MATCH, "join", account)
    print("match: " .. tostring(result) .. " (by " .. tostring(by) .. ")")
    local mails, from = node.call_hash(config.MAIL, account, "inbox", account)
    print("inbox: " .. account .. " has " .. (mails and #mails or 0) .. " mails on " .. tostring(from))
    node.forward_broadcast(config.GAME, "announce", account .. " finished round " .. round)
end

node = node or config.start_node(luna.args[1] or "10.1", {}, {
    on_router_change = function(stream)
        if stream and round == 0 then
            luna.go(function()
                while not rounds or round < rounds do
                    play()
                    luna.sleep(1000)
                end
                print("client done")
                luna_quit_flag = true
            end)
        end
    end,
})
