"""An unmodified boto3 producer, pointed at allim's SQS door by its endpoint URL alone.

It does what a producer does against SQS: looks the queue up, sends single messages, a batch
with one bad entry, a delayed message, the same message twice with one deduplication id, and
one request with a wrong secret. It prints one JSON object describing what boto3 answered;
tests/it/sqs_door.rs runs it (under a current boto3, JSON protocol, and under botocore 1.34.89,
query protocol) and checks what landed in allim and at the SMS stand-in.

Environment: ALLIM_DOOR_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, TAG (makes user
ids and deduplication ids unique to the run), SMS_TO (a phone number for the SMS stand-in).
"""

import json
import os

import boto3
import botocore
from botocore.exceptions import ClientError

endpoint = os.environ["ALLIM_DOOR_ENDPOINT"]
tag = os.environ["TAG"]
sms_to = os.environ["SMS_TO"]


def client(secret=None):
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="ap-northeast-2",
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or os.environ["AWS_SECRET_ACCESS_KEY"],
    )


def in_app(user, title):
    return json.dumps({"notificationType": "APP_NOTIFICATION", "userId": user, "title": title})


sqs = client()
out = {
    "botocore": botocore.__version__,
    "protocol": sqs.meta.service_model.protocol,
}
url = sqs.get_queue_url(QueueName="notifications")["QueueUrl"]
out["queue_url"] = url

single = sqs.send_message(
    QueueUrl=url,
    MessageBody=in_app(f"{tag}-single", "한 건"),
    MessageAttributes={"trace": {"DataType": "String", "StringValue": "t-1"}},
)
out["single"] = single["MessageId"]
out["single_md5_attributes"] = single.get("MD5OfMessageAttributes")

sms = sqs.send_message(
    QueueUrl=url,
    MessageBody=json.dumps({"notificationType": "SMS", "to": [sms_to], "content": f"[allim] {tag} 문자"}),
)
out["sms"] = sms["MessageId"]

batch = sqs.send_message_batch(
    QueueUrl=url,
    Entries=[
        {"Id": "first", "MessageBody": in_app(f"{tag}-batch", "one")},
        {"Id": "bad", "MessageBody": json.dumps({"notificationType": "APP_NOTIFICATION", "userId": f"{tag}-batch"})},
        {"Id": "third", "MessageBody": in_app(f"{tag}-batch", "three")},
    ],
)
out["batch_successful"] = [{"Id": e["Id"], "MessageId": e["MessageId"]} for e in batch.get("Successful", [])]
out["batch_failed"] = [
    {"Id": e["Id"], "Code": e["Code"], "SenderFault": e["SenderFault"], "Message": e.get("Message", "")}
    for e in batch.get("Failed", [])
]

delayed = sqs.send_message(QueueUrl=url, MessageBody=in_app(f"{tag}-delayed", "later"), DelaySeconds=60)
out["delayed"] = delayed["MessageId"]

out["duplicates"] = [
    sqs.send_message(
        QueueUrl=url,
        MessageBody=json.dumps({"notificationType": "SMS", "to": [sms_to], "content": f"[allim] {tag} 한 번만"}),
        MessageDeduplicationId=f"{tag}-once",
    )["MessageId"]
    for _ in range(2)
]

try:
    client(secret="a-wrong-secret-0000000000000000000000").send_message(
        QueueUrl=url, MessageBody=in_app(f"{tag}-wrong", "no")
    )
    out["wrong_secret"] = "accepted"
except ClientError as e:
    out["wrong_secret"] = e.response["Error"]["Code"]

print(json.dumps(out))
