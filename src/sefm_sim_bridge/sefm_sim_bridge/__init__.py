"""MuJoCo LanguageTable, BananaTable and ALOHA environments, scripted demonstrators; the sim bridge node."""
