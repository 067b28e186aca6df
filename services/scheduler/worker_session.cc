#include "services/scheduler/worker_session.h"

namespace tessera::scheduler_host {

bool GrpcWorkerSession::Send(const v1::ServerMessage& message) {
  std::lock_guard lock(mu_);
  if (stream_ == nullptr || finishing_ || outbox_.size() >= kMaxQueuedMessages) return false;
  outbox_.push_back(message);
  if (!writing_) StartNextLocked();
  return true;
}

void GrpcWorkerSession::Close(const grpc::Status& status) {
  std::lock_guard lock(mu_);
  if (stream_ == nullptr || finishing_) return;
  finishing_ = true;
  final_status_ = status;
  if (!writing_) {
    finished_ = true;
    stream_->Finish(status);
  }
}

bool GrpcWorkerSession::closing() {
  std::lock_guard lock(mu_);
  return finishing_ || stream_ == nullptr;
}

void GrpcWorkerSession::StartNextLocked() {
  if (outbox_.empty()) {
    writing_ = false;
    if (finishing_ && !finished_) {
      finished_ = true;
      stream_->Finish(final_status_);
    }
    return;
  }
  writing_ = true;
  stream_->StartWrite(&outbox_.front());
}

void GrpcWorkerSession::WriteDone(bool ok) {
  std::lock_guard lock(mu_);
  if (!outbox_.empty()) outbox_.pop_front();
  if (!ok) {
    // The stream is broken; reads fail too and OnDone follows.
    outbox_.clear();
    writing_ = false;
    return;
  }
  StartNextLocked();
}

void GrpcWorkerSession::Detach() {
  std::lock_guard lock(mu_);
  stream_ = nullptr;
  outbox_.clear();
}

WorkerStream::WorkerStream(StreamHandler& handler, int64_t provider_account_id, std::shared_ptr<void> slot)
    : handler_(handler), session_(std::make_shared<GrpcWorkerSession>(this, provider_account_id)), slot_(std::move(slot)) {
  StartRead(&incoming_);
}

void WorkerStream::OnReadDone(bool ok) {
  if (!ok) {
    session_->Close(grpc::Status::OK);  // the worker closed its side or the connection broke
    return;
  }
  // A closed session reads no more: a message after a refused one (say, the inbound queue was
  // full) would otherwise be stored before it, and the refused one, resent, would look replayed.
  if (session_->closing()) return;
  handler_.OnMessage(session_, std::move(incoming_));
  incoming_.Clear();
  if (session_->closing()) return;
  StartRead(&incoming_);
}

void WorkerStream::OnWriteDone(bool ok) { session_->WriteDone(ok); }

void WorkerStream::OnDone() {
  session_->Detach();
  handler_.OnClosed(session_);
  delete this;
}

}  // namespace tessera::scheduler_host
