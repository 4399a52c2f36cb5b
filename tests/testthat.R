library(testthat)
library(linpert)

test_check("linpert")
