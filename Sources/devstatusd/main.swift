print("devstatusd")
