-- Mail service: three instances, each owning the accounts that hash to it.
--   luna examples/cluster/mail.lua 2.1
local config = import("config.lua")

mailboxes = mailboxes or {} -- account -> list of mails; survives hot reloads

handlers = handlers or {} -- the same table across reloads: the node looks handlers up in it

-- One-way: node.forward_hash(MAIL, account, "send_mail", account, from, text)
function handlers.send_mail(account, from, text)
    local box = mailboxes[account] or {}
    mailboxes[account] = box
    box[#box + 1] = { from = from, text = text, read = false }
    luna.log.info(node.name .. " stored a mail for " .. account)
end

-- RPC: how many unread mails an account has.
function handlers.unread(account)
    local count = 0
    for _, mail in ipairs(mailboxes[account] or {}) do
        if not mail.read then count = count + 1 end
    end
    return count
end

-- RPC: reads (and marks read) every mail of an account.
function handlers.inbox(account)
    local box = mailboxes[account] or {}
    for _, mail in ipairs(box) do mail.read = true end
    return box, node.name
end

node = node or config.start_node(luna.args[1], handlers)
