-- An entry that prints one line and quits.
print('entry ran')
luna_quit_flag = true
