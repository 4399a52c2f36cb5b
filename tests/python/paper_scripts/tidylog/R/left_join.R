# tidylog wraps dplyr's and tidyr's verbs with a message about what they did; the scripts use these two
left_join <- function(...) dplyr::left_join(...)
drop_na <- function(...) tidyr::drop_na(...)
