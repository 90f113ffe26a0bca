"""Pure decision logic: no Faust, no Kafka, no clock. Time is passed in as epoch milliseconds."""
